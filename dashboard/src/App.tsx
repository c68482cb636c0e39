/** The dashboard: a header with live status and navigation, and one view per path. */
import { useState } from 'preact/hooks';
import { Link, usePath } from './components/Nav.js';
import { TokenPrompt } from './components/TokenPrompt.js';
import { clock, count, pct, rps } from './format.js';
import { feed, useLive } from './live.js';
import { GoldenMetrics } from './views/GoldenMetrics.js';
import { Proxies } from './views/Proxies.js';
import { Routes } from './views/Routes.js';
import { Security } from './views/Security.js';
import { ServiceGraph } from './views/ServiceGraph.js';
import { Tap } from './views/Tap.js';
import type { Overview } from '../../src/sdk/client.js';

const PAGES = [
  { path: '/', title: 'Overview' },
  { path: '/routes', title: 'Routes' },
  { path: '/security', title: 'Security' },
  { path: '/proxies', title: 'Proxies' },
  { path: '/tap', title: 'Tap' },
];

export function App() {
  const live = useLive();
  const path = usePath();
  const [selected, setSelected] = useState<string | undefined>(undefined);
  const o = live.overview;
  const page = PAGES.find((p) => p.path === path) ?? PAGES[0]!;

  return (
    <div class="app">
      <header class="top">
        <div class="brand">
          <svg viewBox="0 0 32 32" width="26" height="26" aria-hidden="true"><rect width="32" height="32" rx="7" fill="#0b1220" /><g stroke="#34d399" stroke-width="2.5" fill="none" stroke-linecap="round"><path d="M9 8v16M16 8v16M23 8v16M6 12h20M6 20h20" /></g></svg>
          <span>Trellis</span>
        </div>
        <nav>{PAGES.map((p) => <Link href={p.path} active={p === page}>{p.title}</Link>)}</nav>
        <div class={`conn ${live.connection}`} data-testid="connection" data-state={live.connection} data-updates={live.updates}>
          <span class="dot" />
          {live.connection === 'live' && o ? `live · config v${o.version} · ${clock(o.at)}` : live.connection === 'connecting' ? 'connecting…' : live.connection === 'unauthenticated' ? 'token required' : `reconnecting… ${live.error ?? ''}`}
        </div>
      </header>
      {live.connection === 'unauthenticated' ? <TokenPrompt {...(live.error ? { message: live.error } : {})} /> : null}
      <main>
        {!o ? <p class="empty">{live.connection === 'connecting' ? 'Connecting to the control plane…' : live.error ?? 'Waiting for the control plane…'}</p> : (
          page.path === '/' ? (
            <>
              <Summary overview={o} />
              <section class="card graph-card">
                <header><h2>Service graph</h2><span class="muted">calls over the last {o.window} · edge colour: success rate · label: req/s and p99</span><Legend /></header>
                <div class="graph-wrap"><ServiceGraph overview={o} {...(selected ? { selected } : {})} onSelect={(s) => setSelected(selected === s ? undefined : s)} /></div>
              </section>
              <h2 class="section-title">Golden metrics {selected ? <span class="muted">· {selected} <a href="#" onClick={(e) => { e.preventDefault(); setSelected(undefined); }}>show all</a></span> : null}</h2>
              <GoldenMetrics overview={o} series={live.series} {...(selected ? { only: selected } : {})} />
            </>
          ) : page.path === '/routes' ? <Routes overview={o} />
            : page.path === '/security' ? <Security overview={o} />
              : page.path === '/proxies' ? <Proxies overview={o} />
                : <Tap overview={o} onUnauthenticated={() => feed.restart()} />
        )}
      </main>
    </div>
  );
}

function Summary({ overview }: { overview: Overview }) {
  const entry = overview.stats.edges.filter((e) => e.source === e.service);
  const inbound = entry.reduce((a, e) => a + e.rps, 0);
  const requests = overview.stats.services.reduce((a, r) => a + r.requests, 0);
  const ok = overview.stats.services.reduce((a, r) => a + r.successes, 0);
  const connected = overview.proxies.filter((p) => p.connected).length;
  const inSync = overview.proxies.filter((p) => p.connected && p.ackedVersion === overview.version).length;
  return (
    <div class="summary" data-testid="summary">
      <div><span class="big">{overview.services.length}</span><span class="unit">services</span></div>
      <div><span class="big">{connected}/{overview.proxies.length}</span><span class="unit">proxies connected</span></div>
      <div><span class={`big ${inSync === connected ? 'ok' : 'warn'}`}>{inSync}/{connected}</span><span class="unit">in sync (v{overview.version})</span></div>
      <div><span class="big">{rps(inbound)}</span><span class="unit">req/s entering</span></div>
      <div><span class="big">{count(requests)}</span><span class="unit">requests / {overview.window}</span></div>
      <div><span class={`big ${requests === 0 || ok / requests >= 0.99 ? 'ok' : 'bad'}`}>{requests ? pct(ok / requests, 2) : '–'}</span><span class="unit">success (all hops)</span></div>
      <div><span class={`big ${overview.authorization.denials.length ? 'warn' : ''}`}>{overview.authorization.denialsKept}</span><span class="unit">recent denials</span></div>
    </div>
  );
}

function Legend() {
  return (
    <span class="legend">
      <span><i class="sw ok" />≥ 99%</span><span><i class="sw warn" />≥ 95%</span><span><i class="sw bad" />&lt; 95%</span>
    </span>
  );
}
