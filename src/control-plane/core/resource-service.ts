/**
 * Applying and deleting resources. A batch is validated whole (schema, duplicates, cross-references) and
 * written atomically: one bad document refuses the batch and nothing changes.
 */
import { isDeepStrictEqual } from 'node:util';
import type { z } from 'zod';
import { Resource, type Kind } from '../../api/schema/resources.js';
import { ValidationError, formatPath, type FieldError } from '../../api/schema/validate.js';
import type { ApplyResult } from '../contract.js';
import type { Store } from './ports.js';

/** What the resource service needs to know about services registered by proxies. */
export interface ServiceDirectory {
  hasService(name: string): boolean;
}

export interface ApplyOptions { dryRun?: boolean }

/** Converts zod issues to field errors under `prefix` (e.g. "resources[1]"), one per unknown key. */
export function issuesToFieldErrors(issues: z.core.$ZodIssue[], prefix: ReadonlyArray<PropertyKey> = []): FieldError[] {
  const out: FieldError[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: formatPath([...path, key]), message: `unknown field "${key}"` });
    } else if (issue.code === 'invalid_union' && issue.errors.length > 0 && issue.errors.every((e) => e.length > 0)) {
      // Report the branch that got furthest rather than a bare "invalid input".
      const best = [...issue.errors].sort((a, b) => depth(b) - depth(a))[0]!;
      out.push(...issuesToFieldErrors(best, path));
    } else {
      out.push({ path: formatPath(path), message: issue.message });
    }
  }
  return out;
}

function depth(issues: z.core.$ZodIssue[]): number {
  return Math.max(0, ...issues.map((i) => i.path.length));
}

/** Validates one resource document, throwing a ValidationError whose paths start at the document. */
export function validateResource(value: unknown, prefix: ReadonlyArray<PropertyKey> = []): Resource {
  const result = Resource.safeParse(value);
  if (!result.success) throw new ValidationError(issuesToFieldErrors(result.error.issues, prefix));
  return result.data;
}

/** Every place a resource names a service, with its field path (relative to the resource). */
export function serviceReferences(r: Resource): { path: (string | number)[]; name: string }[] {
  const refs: { path: (string | number)[]; name: string }[] = [];
  switch (r.kind) {
    case 'HTTPRoute':
      r.spec.parentRefs.forEach((p, i) => refs.push({ path: ['spec', 'parentRefs', i, 'name'], name: p.name }));
      r.spec.rules.forEach((rule, i) => {
        (rule.backendRefs ?? []).forEach((b, j) => refs.push({ path: ['spec', 'rules', i, 'backendRefs', j, 'name'], name: b.name }));
        (rule.filters ?? []).forEach((f, j) => {
          if (f.type === 'RequestMirror') {
            refs.push({ path: ['spec', 'rules', i, 'filters', j, 'requestMirror', 'backendRef', 'name'], name: f.requestMirror.backendRef.name });
          }
        });
      });
      break;
    case 'TCPRoute':
      r.spec.parentRefs.forEach((p, i) => refs.push({ path: ['spec', 'parentRefs', i, 'name'], name: p.name }));
      r.spec.rules.forEach((rule, i) => {
        rule.backendRefs.forEach((b, j) => refs.push({ path: ['spec', 'rules', i, 'backendRefs', j, 'name'], name: b.name }));
      });
      break;
    case 'TrafficPolicy':
    case 'AuthorizationPolicy':
    case 'JWTAuthentication':
      refs.push({ path: ['spec', 'targetRef', 'name'], name: r.spec.targetRef.name });
      break;
    case 'Rollout':
      refs.push({ path: ['spec', 'service'], name: r.spec.service });
      break;
    default:
      break;
  }
  return refs;
}

export class ResourceService {
  private readonly store: Store;
  private readonly directory: ServiceDirectory;
  private lock: Promise<unknown> = Promise.resolve();

  constructor(store: Store, directory: ServiceDirectory) {
    this.store = store;
    this.directory = directory;
  }

  /**
   * Validates every document, then writes the changed ones atomically (unless dryRun).
   * Throws ValidationError (paths like `resources[1].spec.rules[0].backendRefs[0].weight`) and changes nothing.
   */
  apply(documents: unknown[], opts: ApplyOptions = {}): Promise<ApplyResult[]> {
    return this.exclusive(() => this.applyLocked(documents, opts));
  }

  private async applyLocked(documents: unknown[], opts: ApplyOptions): Promise<ApplyResult[]> {
    if (!Array.isArray(documents)) throw new ValidationError([{ path: 'resources', message: 'must be an array of resources' }]);
    const errors: FieldError[] = [];
    const parsed: (Resource | undefined)[] = documents.map((doc, i) => {
      const result = Resource.safeParse(doc);
      if (result.success) return JSON.parse(JSON.stringify(result.data)) as Resource;
      errors.push(...issuesToFieldErrors(result.error.issues, ['resources', i]));
      return undefined;
    });

    // Duplicates inside the batch.
    const seen = new Map<string, number>();
    parsed.forEach((r, i) => {
      if (!r) return;
      const key = `${r.kind}/${r.metadata.name}`;
      const first = seen.get(key);
      if (first !== undefined) {
        errors.push({ path: formatPath(['resources', i, 'metadata', 'name']), message: `duplicate of resources[${first}] (${key})` });
      } else {
        seen.set(key, i);
      }
    });

    // Cross-references: a referenced service is a Service resource, a registered service, or a Service in the batch.
    const batchServices = new Set(parsed.filter((r): r is Resource => r?.kind === 'Service').map((r) => r.metadata.name));
    const storedServices = new Set((await this.store.listResources('Service')).map((r) => r.metadata.name));
    const known = (name: string) => batchServices.has(name) || storedServices.has(name) || this.directory.hasService(name);
    parsed.forEach((r, i) => {
      if (!r) return;
      for (const ref of serviceReferences(r)) {
        if (!known(ref.name)) {
          errors.push({ path: formatPath(['resources', i, ...ref.path]), message: `unknown service ${ref.name}` });
        }
      }
    });

    // One Rollout per service: the rollout controller owns the split of the service's traffic.
    const batchRollouts = new Set(parsed.filter((r) => r?.kind === 'Rollout').map((r) => r!.metadata.name));
    const rolloutOf = new Map<string, string>();
    for (const r of await this.store.listResources('Rollout')) {
      if (r.kind === 'Rollout' && !batchRollouts.has(r.metadata.name)) rolloutOf.set(r.spec.service, r.metadata.name);
    }
    parsed.forEach((r, i) => {
      if (r?.kind !== 'Rollout') return;
      const other = rolloutOf.get(r.spec.service);
      if (other !== undefined && other !== r.metadata.name) {
        errors.push({ path: formatPath(['resources', i, 'spec', 'service']), message: `service ${r.spec.service} already has Rollout ${other} (one Rollout per service)` });
      } else {
        rolloutOf.set(r.spec.service, r.metadata.name);
      }
    });

    if (errors.length > 0) throw new ValidationError(errors);

    const results: ApplyResult[] = [];
    const changed: Resource[] = [];
    for (const r of parsed as Resource[]) {
      const existing = await this.store.getResource(r.kind, r.metadata.name);
      const action = !existing ? 'created' : isDeepStrictEqual(existing, r) ? 'unchanged' : 'configured';
      results.push({ kind: r.kind, name: r.metadata.name, action });
      if (action !== 'unchanged') changed.push(r);
    }
    if (!opts.dryRun && changed.length > 0) await this.store.writeResources(changed);
    return results;
  }

  list(kind?: Kind): Promise<Resource[]> {
    return this.store.listResources(kind);
  }

  get(kind: Kind, name: string): Promise<Resource | undefined> {
    return this.store.getResource(kind, name);
  }

  /** Returns false when the resource does not exist. */
  delete(kind: Kind, name: string): Promise<boolean> {
    return this.exclusive(() => this.store.deleteResource(kind, name));
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }
}
