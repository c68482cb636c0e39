/**
 * The config stream: one long-lived HTTP/2 request to the control plane carrying NDJSON both ways.
 * Sends hello (the instance to register), then ACK/NACK per snapshot version; receives snapshots.
 * When the stream breaks the proxy keeps its last good config and reconnects with jittered
 * exponential backoff; on reconnect it says hello again and resyncs.
 * Live tap: `tap-start`/`tap-stop` are emitted as events of the same name (proxy.ts hands them to the TapHub);
 * tap batches go out with `sendBounded`, which refuses rather than queue behind a backlog.
 */
import type http2 from 'node:http2';
import { EventEmitter } from 'node:events';
import { ServerMessage, XDS_PATHS, type InstanceInfo, type ProxyMessage } from '../../api/schema/xds.js';
import type { Logger } from '../../shared/log.js';
import type { ControlPlaneClient } from './control-plane-client.js';

export interface SnapshotHandler {
  /** Applies a raw snapshot; resolves with its version, or rejects with the reason to NACK. */
  apply(raw: unknown): Promise<string>;
  /** Applies a raw SnapshotDelta (same contract). When present, hello announces the `delta` feature. */
  applyDelta?(raw: unknown): Promise<string>;
}

export interface Backoff { baseMs: number; maxMs: number }

export function backoffDelay(attempt: number, b: Backoff, random = Math.random): number {
  const cap = Math.min(b.maxMs, b.baseMs * 2 ** Math.min(attempt, 16));
  return Math.round(cap / 2 + random() * (cap / 2));
}

const MAX_LINE = 64 * 1024 * 1024;

/**
 * NDJSON framing in linear time: a snapshot line of megabytes arrives in many chunks, and only each new
 * chunk is searched for the newline (not the whole buffer again); the pieces are joined once.
 */
export class LineSplitter {
  private pieces: string[] = [];
  private size = 0;

  constructor(private readonly maxLine: number) {}

  /** Feeds a chunk; calls onLine for every complete line. Returns false when a line exceeds maxLine. */
  push(chunk: string, onLine: (line: string) => void): boolean {
    let start = 0;
    let nl: number;
    while ((nl = chunk.indexOf('\n', start)) !== -1) {
      const part = chunk.slice(start, nl);
      let line = part;
      if (this.pieces.length > 0) {
        this.pieces.push(part);
        line = this.pieces.join('');
        this.pieces = [];
        this.size = 0;
      }
      if (line.length > this.maxLine) return false;
      onLine(line);
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.slice(start);
      this.size += rest.length;
      if (this.size > this.maxLine) return false;
      this.pieces.push(rest);
    }
    return true;
  }
}

export class XdsStream extends EventEmitter {
  private session?: http2.ClientHttp2Session;
  private stream?: http2.ClientHttp2Stream;
  private stopped = false;
  private attempt = 0;
  private timer?: NodeJS.Timeout;
  private lastVersion?: string;
  /** Settles when every message received so far has been handled (enqueue). */
  private inbox: Promise<void> = Promise.resolve();
  connected = false;

  constructor(
    private readonly cp: ControlPlaneClient,
    private readonly credentials: () => { keyPem: string; certPem: string },
    private readonly instance: InstanceInfo,
    private readonly handler: SnapshotHandler,
    private readonly log: Logger,
    private readonly backoff: Backoff = { baseMs: 250, maxMs: 10_000 },
    private readonly certNotAfter?: () => Date,
  ) {
    super();
  }

  start(): void {
    void this.connect();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    try {
      const session = await this.cp.connect(this.credentials());
      if (this.stopped) { session.close(); return; }
      this.session = session;
      const stream = session.request({ ':method': 'POST', ':path': XDS_PATHS.stream, 'content-type': 'application/x-ndjson' });
      this.stream = stream;
      const lines = new LineSplitter(MAX_LINE);
      let opened = false;
      stream.setEncoding('utf8');
      stream.on('response', (h) => {
        const status = Number(h[':status']);
        if (status !== 200) {
          this.log.warn('control plane refused the config stream', { status, controlPlane: this.cp.address });
          // Another control plane may serve (this one may be shutting down).
          this.cp.rotate();
          stream.close();
          return;
        }
        opened = true;
        this.connected = true;
        this.attempt = 0;
        this.emit('connected');
        this.send({
          type: 'hello', instance: this.instance, lastVersion: this.lastVersion, certNotAfter: this.certNotAfter?.().toISOString(),
          features: [...(this.handler.applyDelta ? ['delta'] : []), 'control-planes'],
        });
      });
      stream.on('data', (chunk: string) => {
        if (!lines.push(chunk, (line) => { if (line.trim()) this.enqueue(line); })) stream.close();
      });
      const onEnd = () => {
        if (this.stream !== stream) return;
        this.stream = undefined;
        this.connected = false;
        session.close();
        if (opened) this.emit('disconnected');
        this.scheduleReconnect();
      };
      stream.on('close', onEnd);
      stream.on('error', () => {});
      session.on('error', () => {});
      session.on('close', () => { if (this.stream === stream) stream.destroy(); });
    } catch (err) {
      this.log.warn('control plane unreachable; serving the last good config', { error: (err as Error).message });
      this.scheduleReconnect();
    }
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    const delay = backoffDelay(this.attempt++, this.backoff);
    this.timer = setTimeout(() => void this.connect(), delay);
  }

  /**
   * Messages are handled one after the other, in arrival order, even when handling one waits (a module a
   * config needs is loading: ConfigApplier.prepare): a later snapshot or delta never overtakes an earlier one.
   */
  private enqueue(line: string): void {
    const previous = this.inbox;
    let done!: () => void;
    this.inbox = new Promise<void>((resolve) => { done = resolve; });
    void previous.then(() => this.onLine(line)).finally(done);
  }

  private async onLine(line: string): Promise<void> {
    let msg;
    try {
      msg = ServerMessage.parse(JSON.parse(line));
    } catch (err) {
      this.log.warn('unreadable message from the control plane', { error: (err as Error).message });
      return;
    }
    if (msg.type === 'error') {
      this.log.error('control plane error', { error: msg.error });
      return;
    }
    if (msg.type === 'tap-start' || msg.type === 'tap-stop') {
      this.emit(msg.type, msg);
      return;
    }
    if (msg.type === 'control-planes') {
      this.cp.learnAddresses(msg.addresses);
      return;
    }
    const raw = msg.type === 'delta' ? msg.delta : msg.snapshot;
    const version = (raw as { version?: unknown } | null)?.version;
    try {
      if (msg.type === 'delta' && !this.handler.applyDelta) throw new Error('this proxy does not take deltas');
      const applied = msg.type === 'delta' ? await this.handler.applyDelta!(raw) : await this.handler.apply(raw);
      this.lastVersion = applied;
      this.send({ type: 'ack', version: applied });
    } catch (err) {
      this.send({ type: 'nack', version: typeof version === 'string' ? version : 'unknown', error: (err as Error).message });
    }
  }

  send(msg: ProxyMessage): void {
    const stream = this.stream;
    if (stream && !stream.destroyed && stream.writable) stream.write(JSON.stringify(msg) + '\n');
  }

  /** Sends unless the stream is down or already holds more than `maxBacklogBytes` unsent: never queues without bound. */
  sendBounded(msg: ProxyMessage, maxBacklogBytes: number): boolean {
    const stream = this.stream;
    if (!stream || stream.destroyed || !stream.writable || !this.connected) return false;
    if (stream.writableLength > maxBacklogBytes) return false;
    stream.write(JSON.stringify(msg) + '\n');
    return true;
  }

  /** Tells the control plane this instance is leaving, then closes the stream. */
  async goodbye(timeoutMs = 2000): Promise<void> {
    const stream = this.stream;
    this.stopped = true;
    clearTimeout(this.timer);
    if (!stream || stream.destroyed) { this.session?.close(); return; }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      stream.end(JSON.stringify({ type: 'goodbye' } satisfies ProxyMessage) + '\n', () => { clearTimeout(timer); resolve(); });
    });
    this.session?.close();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.stream?.destroy();
    this.session?.destroy();
  }
}
