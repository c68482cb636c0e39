/**
 * Live tap: the requests every instance of one service sees (inbound and outbound), through TrellisClient.tap()
 * (GET /api/v1/tap). Filters: service, path prefix, method. The newest MAX_ROWS are kept; the control plane and the
 * proxies drop (and count) rather than slow traffic, and the count is shown.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Overview, TapEvent } from '../../../src/sdk/client.js';
import { client, isUnauthenticated, TrellisApiError } from '../api.js';
import { clock, ms } from '../format.js';

const MAX_ROWS = 300;
const METHODS = ['', 'GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'];

interface Running { abort: AbortController; service: string }

export function Tap({ overview, onUnauthenticated }: { overview: Overview; onUnauthenticated: () => void }) {
  const services = overview.services.map((s) => s.name);
  const [service, setService] = useState(services[0] ?? '');
  const [path, setPath] = useState('');
  const [method, setMethod] = useState('');
  const [rows, setRows] = useState<TapEvent[]>([]);
  const [status, setStatus] = useState<{ instances: number; dropped: number } | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [running, setRunning] = useState<Running | undefined>(undefined);
  const pending = useRef<TapEvent[]>([]);

  useEffect(() => { if (!service && services[0]) setService(services[0]); }, [services.join(',')]);
  // Batch renders: events arrive in bursts; the table is redrawn at most every 250 ms.
  useEffect(() => {
    if (!running) return;
    const t = window.setInterval(() => {
      if (pending.current.length === 0) return;
      const fresh = pending.current.reverse();
      pending.current = [];
      setRows((old) => [...fresh, ...old].slice(0, MAX_ROWS));
    }, 250);
    return () => window.clearInterval(t);
  }, [running]);
  useEffect(() => () => running?.abort.abort(), [running]);

  const start = async () => {
    running?.abort.abort();
    const abort = new AbortController();
    setRows([]); setStatus(undefined); setError(undefined);
    pending.current = [];
    setRunning({ abort, service });
    try {
      const filter = { service, ...(path ? { path } : {}), ...(method ? { method } : {}) };
      for await (const msg of client().tap(filter, { signal: abort.signal })) {
        if (msg.type === 'tap') {
          pending.current.push(msg.event);
          if (pending.current.length > MAX_ROWS) pending.current.splice(0, pending.current.length - MAX_ROWS);
        } else setStatus({ instances: msg.instances, dropped: msg.dropped });
      }
      if (!abort.signal.aborted) setError('the control plane ended the tap');
    } catch (err) {
      if (abort.signal.aborted) return;
      if (isUnauthenticated(err)) onUnauthenticated();
      const e = err as TrellisApiError;
      setError(e instanceof TrellisApiError && e.errors.length > 0 ? e.errors.map((x) => `${x.path}: ${x.message}`).join('; ') : e.message);
    }
    setRunning((r) => (r?.abort === abort ? undefined : r));
  };
  const stop = () => { running?.abort.abort(); setRunning(undefined); };

  return (
    <section class="card">
      <header><h3>Live tap</h3><span class="muted">requests seen by every proxy of a service, both directions; headers redacted</span></header>
      <form class="tap-form" onSubmit={(e) => { e.preventDefault(); void start(); }}>
        <label>service
          <select value={service} onChange={(e) => setService((e.target as HTMLSelectElement).value)} data-testid="tap-service">
            {services.map((s) => <option value={s}>{s}</option>)}
          </select>
        </label>
        <label>path prefix <input type="text" placeholder="/api" value={path} onInput={(e) => setPath((e.target as HTMLInputElement).value)} data-testid="tap-path" /></label>
        <label>method
          <select value={method} onChange={(e) => setMethod((e.target as HTMLSelectElement).value)} data-testid="tap-method">
            {METHODS.map((m) => <option value={m}>{m || 'any'}</option>)}
          </select>
        </label>
        {running ? <button type="button" onClick={stop} data-testid="tap-stop">Stop</button>
          : <button type="submit" class="primary" disabled={!service} data-testid="tap-start">Start tap</button>}
        <span class="muted small" data-testid="tap-status">
          {running ? `tapping ${running.service}` : 'stopped'}{status ? ` · ${status.instances} proxies · ${status.dropped} dropped` : ''} · {rows.length} shown
        </span>
      </form>
      {error ? <div class="outcome error" role="alert">{error}</div> : null}
      <table class="tap" data-testid="tap-table">
        <thead><tr><th>time</th><th>instance</th><th>dir</th><th>source → destination</th><th>request</th><th>status</th><th>latency</th><th>route</th><th>upstream</th></tr></thead>
        <tbody>
          {rows.map((e) => (
            <tr data-testid="tap-row" class={e.status >= 500 || e.error ? 'bad' : e.status >= 400 ? 'warn' : ''}>
              <td>{clock(e.at)}</td>
              <td class="mono small">{e.instance}</td>
              <td>{e.direction === 'inbound' ? 'in' : 'out'}</td>
              <td>{e.source} → {e.destination}</td>
              <td class="mono">{e.method} {e.path}</td>
              <td>{e.status}{e.error ? <span class="small"> {e.error}</span> : null}</td>
              <td>{ms(e.latencyMs)}</td>
              <td class="mono small">{e.route ?? ''}</td>
              <td class="mono small">{e.upstream ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
