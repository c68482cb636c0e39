/** Every proxy: instance, service, labels, proxy version, connection, config version ACKed vs current, last NACK, certificate expiry. */
import type { Overview, ProxyState } from '../../../src/sdk/client.js';
import { labels, relative } from '../format.js';

function configState(p: ProxyState, current: string): { text: string; cls: string } {
  if (p.lastNack && p.lastNack.version === p.lastSentVersion) return { text: `NACK v${p.lastNack.version}`, cls: 'bad' };
  if (!p.connected) return { text: 'disconnected', cls: 'bad' };
  if (p.ackedVersion === current) return { text: 'in sync', cls: 'ok' };
  if (p.ackedVersion === undefined) return { text: 'no ACK yet', cls: 'warn' };
  return { text: `behind (v${p.ackedVersion})`, cls: 'warn' };
}

function certClass(notAfter: string | undefined): string {
  if (!notAfter) return 'warn';
  const left = Date.parse(notAfter) - Date.now();
  return left <= 0 ? 'bad' : left < 3_600_000 ? 'warn' : 'ok';
}

export function Proxies({ overview }: { overview: Overview }) {
  const proxies = overview.proxies;
  if (proxies.length === 0) return <p class="empty">No proxy has connected.</p>;
  return (
    <section class="card">
      <header>
        <h3>Proxies</h3>
        <span class="muted">current config version <strong>v{overview.version}</strong> · {proxies.filter((p) => p.connected).length}/{proxies.length} connected</span>
      </header>
      <table data-testid="proxies">
        <thead><tr><th>instance</th><th>service</th><th>labels</th><th>proxy</th><th>connected</th><th>config</th><th>ACK state</th><th>certificate expires</th></tr></thead>
        <tbody>
          {proxies.map((p) => {
            const c = configState(p, overview.version);
            return (
              <tr data-testid="proxy-row" data-instance={p.instanceId}>
                <td class="mono">{p.instanceId}<div class="muted small">{p.address}</div></td>
                <td>{p.service}</td>
                <td class="mono small">{labels(p.labels)}</td>
                <td class="mono small">{p.proxyVersion ?? '–'}</td>
                <td>{p.connected ? <span class="badge ok">since {relative(p.connectedAt)}</span> : <span class="badge bad">{relative(p.disconnectedAt)}</span>}</td>
                <td class="mono">{p.ackedVersion ? `v${p.ackedVersion}` : '–'}{p.lastSentVersion && p.lastSentVersion !== p.ackedVersion ? <span class="muted"> (sent v{p.lastSentVersion})</span> : null}</td>
                <td><span class={`badge ${c.cls}`}>{c.text}</span>{p.lastNack ? <div class="small bad" title={p.lastNack.error}>last NACK v{p.lastNack.version}: {p.lastNack.error.slice(0, 80)}</div> : null}</td>
                <td><span class={`badge ${certClass(p.certNotAfter)}`} title={p.certNotAfter}>{relative(p.certNotAfter)}</span></td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}
