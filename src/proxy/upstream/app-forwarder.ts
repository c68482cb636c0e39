/**
 * The inbound side's last hop: the local application at --app, over HTTP/1.1 (keep-alive pool),
 * HTTP/2 cleartext (one multiplexed session) for http2/grpc apps, or raw TCP.
 */
import http2 from 'node:http2';
import net from 'node:net';
import { MeshError } from '../../api/errors.js';
import type { Protocol } from '../../api/schema/common.js';
import type { HostPort } from '../../shared/address.js';
import type { MeshRequest, MeshResponse } from '../pipeline/types.js';
import { h2Forward } from './h2-forward.js';
import { h1Forward, plainPool, type H1Target } from './h1-forward.js';
import type { Pool } from './undici-pool.js';

export class AppForwarder {
  private h1?: H1Target & { pool: Pool };
  private h2?: { session: http2.ClientHttp2Session; ready: Promise<http2.ClientHttp2Session> };

  constructor(readonly app: HostPort, readonly protocol: Protocol, private readonly connectTimeoutMs = 2000) {
    if (protocol === 'http') this.h1Target(); // the client loads now, not on the first request
  }

  forward(req: MeshRequest): Promise<MeshResponse> {
    return this.protocol === 'http2' || this.protocol === 'grpc' ? this.forwardH2(req) : this.forwardH1(req);
  }

  private forwardH1(req: MeshRequest): Promise<MeshResponse> {
    return h1Forward(this.h1Target(), req);
  }

  private h1Target(): H1Target {
    // Idle connections close after the app's Keep-Alive hint (less a second), else after 4 s.
    return this.h1 ??= { pool: plainPool(this.app.host, this.app.port, this.connectTimeoutMs), label: `app ${this.app.host}:${this.app.port}` };
  }

  private async forwardH2(req: MeshRequest): Promise<MeshResponse> {
    const session = await this.h2Session();
    return h2Forward(session, req, 'http');
  }

  private h2Session(): Promise<http2.ClientHttp2Session> {
    if (this.h2 && !this.h2.session.closed && !this.h2.session.destroyed) return this.h2.ready;
    const session = http2.connect(`http://${this.app.host}:${this.app.port}`);
    session.setMaxListeners(0);
    const ready = new Promise<http2.ClientHttp2Session>((resolve, reject) => {
      const timer = setTimeout(() => { session.destroy(); reject(new MeshError('UPSTREAM_CONNECT_FAILED', 'app connect timed out')); }, this.connectTimeoutMs);
      session.once('connect', () => { clearTimeout(timer); resolve(session); });
      session.once('error', (err) => { clearTimeout(timer); reject(new MeshError('UPSTREAM_CONNECT_FAILED', `app: ${err.message}`)); });
    });
    ready.catch(() => {});
    const entry = { session, ready };
    const forget = () => { if (this.h2 === entry) this.h2 = undefined; };
    session.on('close', forget);
    session.on('error', forget);
    session.on('goaway', forget);
    this.h2 = entry;
    return ready;
  }

  /** A raw TCP connection to the app (TCP services, WebSocket upgrades). */
  connectRaw(): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: this.app.host, port: this.app.port });
      socket.once('connect', () => { socket.setNoDelay(true); resolve(socket); });
      socket.once('error', (err) => reject(new MeshError('UPSTREAM_CONNECT_FAILED', `app: ${err.message}`)));
    });
  }

  close(): void {
    this.h1?.pool.destroy().catch(() => {});
    this.h2?.session.close();
  }
}
