import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MeshError } from '../../../src/api/errors.js';
import { normaliseRequestPath, normaliseTarget } from '../../../src/proxy/authz/path.js';

describe('path normalisation', () => {
  const vectors: Array<[string, string]> = [
    ['/public/../admin', '/admin'],
    ['/public/%2e%2e/admin', '/admin'],
    ['/public/%2E%2E/admin', '/admin'],
    ['/public/.%2e/admin/x', '/admin/x'],
    ['//admin', '/admin'],
    ['///admin//x', '/admin/x'],
    ['/admin;x=1', '/admin'],
    ['/admin;x=1/y;z', '/admin/y'],
    ['/public/..;/admin', '/admin'],
    ['/%61dmin', '/admin'],
    ['/admin#x', '/admin'],
    ['/admin/./x', '/admin/x'],
    ['/a/b/..', '/a/'],
    ['/a/b/.', '/a/b/'],
    ['/public/..', '/'],
    ['/', '/'],
    ['/a/', '/a/'],
    ['/%7Euser/%2D%5F', '/~user/-_'],
  ];
  for (const [input, want] of vectors) {
    it(`${input} → ${want}`, () => assert.equal(normaliseTarget(input).path, want));
  }

  it('keeps the query string untouched and drops the fragment', () => {
    assert.deepEqual(normaliseTarget('/public/../admin?a=%2e%2e/../b&c=//d#frag'), {
      path: '/admin', query: '?a=%2e%2e/../b&c=//d', target: '/admin?a=%2e%2e/../b&c=//d',
    });
    assert.equal(normaliseRequestPath('/x?#y'), '/x?');
  });

  it('keeps an encoded slash (and other reserved escapes) encoded, upper-cased', () => {
    assert.equal(normaliseTarget('/admin%2fx').path, '/admin%2Fx');
    assert.equal(normaliseTarget('/public%2F..%2Fadmin').path, '/public%2F..%2Fadmin');
    assert.equal(normaliseTarget('/a%20b%3b').path, '/a%20b%3B');
  });

  it('is case-sensitive and does not fold case', () => {
    assert.equal(normaliseTarget('/ADMIN').path, '/ADMIN');
  });

  it('is idempotent', () => {
    for (const [input] of vectors) {
      const once = normaliseRequestPath(input);
      assert.equal(normaliseRequestPath(once), once, input);
    }
  });

  for (const badPath of ['/..', '/../admin', '/a/../../b', '/%2e%2e/x', '/a%00b', '/a\0b', '/%zz', '/%4', '/x%', 'admin', '']) {
    it(`refuses ${JSON.stringify(badPath)} with 400 BAD_REQUEST`, () => {
      assert.throws(() => normaliseTarget(badPath), (err: unknown) => err instanceof MeshError && err.code === 'BAD_REQUEST' && err.status === 400);
    });
  }

  it('lets OPTIONS * through', () => assert.equal(normaliseRequestPath('*'), '*'));
});
