/** Asks for the admin token when the API answers 401 (an API not on loopback); kept in sessionStorage for this tab. */
import { useState } from 'preact/hooks';
import { hasToken, setToken } from '../api.js';

export function TokenPrompt({ message }: { message?: string }) {
  const [value, setValue] = useState('');
  return (
    <div class="modal-backdrop">
      <form class="modal card" data-testid="token-prompt" onSubmit={(e) => { e.preventDefault(); if (value.trim()) setToken(value.trim()); }}>
        <h3>Admin token required</h3>
        <p class="muted">
          This control plane's API is not on loopback, so it needs its admin token (the file <code>admin-token</code> in its
          data dir). It stays in this tab only.
        </p>
        {hasToken() ? <p class="bad small">The stored token was refused{message ? `: ${message}` : ''}.</p> : null}
        <input type="password" autoComplete="off" placeholder="admin token" value={value} onInput={(e) => setValue((e.target as HTMLInputElement).value)} autoFocus />
        <div class="actions"><button class="primary" type="submit" disabled={!value.trim()}>Connect</button></div>
      </form>
    </div>
  );
}
