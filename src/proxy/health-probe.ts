/**
 * Active health probes, sent from the calling proxy to an endpoint's inbound listener over mTLS:
 * HTTP (GET path through the peer to its app; 2xx/3xx is healthy) or TCP (the peer opens a TCP
 * connection to its app).
 */
import type { ClusterConfig } from '../api/schema/snapshot.js';
import type { Probe } from './upstream/health-checker.js';
import { ALPN_TCP, type PeerPool } from './upstream/peer-pool.js';

export function makeProbe(peers: PeerPool, cluster: ClusterConfig): Probe {
  const hc = cluster.trafficPolicy?.healthCheck;
  const service = cluster.name;
  if (hc?.http) {
    const path = hc.http.path;
    return async (ep, timeoutMs) => {
      try {
        const session = await peers.session(ep.address, service, timeoutMs);
        return await new Promise<boolean>((resolve) => {
          const stream = session.request({ ':method': 'GET', ':path': path, ':authority': service, 'user-agent': 'trellis-health-check' });
          const timer = setTimeout(() => { stream.close(); resolve(false); }, timeoutMs);
          stream.on('response', (h) => {
            clearTimeout(timer);
            const status = Number(h[':status']);
            stream.close();
            resolve(status >= 200 && status < 400);
          });
          stream.on('error', () => { clearTimeout(timer); resolve(false); });
          stream.end();
        });
      } catch {
        return false;
      }
    };
  }
  return async (ep, timeoutMs) => {
    try {
      const socket = await peers.connectRaw(ep.address, service, ALPN_TCP, timeoutMs);
      // The peer closes at once when its app refused the connection.
      return await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => { socket.destroy(); resolve(true); }, Math.min(100, timeoutMs));
        socket.once('close', () => { clearTimeout(timer); resolve(false); });
      });
    } catch {
      return false;
    }
  };
}
