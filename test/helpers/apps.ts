/**
 * Real application servers for integration tests, all on 127.0.0.1 port 0:
 * HTTP/1.1 and HTTP/2 echo apps, a gRPC service (unary, server- and bidi-streaming), a TCP echo
 * server and a WebSocket echo server. Each reports what it received so tests can assert on it.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { WebSocketServer } from 'ws';

export interface TestApp {
  name: string;
  address: string;
  port: number;
  /** Requests seen, in order. */
  seen: Array<{ method: string; path: string; headers: Record<string, unknown> }>;
  close(): Promise<void>;
}

function addressOf(server: net.Server): { address: string; port: number } {
  const a = server.address() as AddressInfo;
  return { address: `127.0.0.1:${a.port}`, port: a.port };
}

function listen(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
}

/** Answers JSON {app, method, path, headers, body}; /status/NNN answers that status; /slow?ms=N waits. */
export async function startHttpApp(name: string): Promise<TestApp> {
  const seen: TestApp['seen'] = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const status = url.pathname.startsWith('/status/') ? Number(url.pathname.slice(8)) : 200;
      const delay = Number(url.searchParams.get('ms') ?? 0);
      const send = () => {
        const body = JSON.stringify({ app: name, method: req.method, path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(status, { 'content-type': 'application/json', 'x-app': name });
        res.end(body);
      };
      if (url.pathname === '/slow') setTimeout(send, delay);
      else send();
    });
  });
  server.keepAliveTimeout = 60_000;
  await listen(server);
  return { name, ...addressOf(server), seen, close: () => closeServer(server) };
}

export async function startH2App(name: string): Promise<TestApp> {
  const seen: TestApp['seen'] = [];
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    seen.push({ method: String(headers[':method']), path: String(headers[':path']), headers: { ...headers } });
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/json', 'x-app': name }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-trailer': 'done' }));
      stream.end(JSON.stringify({ app: name, path: headers[':path'], body: Buffer.concat(chunks).toString('utf8'), protocol: 'h2' }));
    });
  });
  await listen(server);
  return { name, ...addressOf(server), seen, close: () => closeServer(server) };
}

// ---- gRPC with a JSON codec (no .proto needed) ----
const json = {
  serialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer) => JSON.parse(b.toString('utf8')) as Record<string, unknown>,
};

export const ECHO_SERVICE: grpc.ServiceDefinition = {
  Echo: {
    path: '/trellis.test.Echo/Echo', requestStream: false, responseStream: false,
    requestSerialize: json.serialize, requestDeserialize: json.deserialize,
    responseSerialize: json.serialize, responseDeserialize: json.deserialize,
  },
  Count: {
    path: '/trellis.test.Echo/Count', requestStream: false, responseStream: true,
    requestSerialize: json.serialize, requestDeserialize: json.deserialize,
    responseSerialize: json.serialize, responseDeserialize: json.deserialize,
  },
  Chat: {
    path: '/trellis.test.Echo/Chat', requestStream: true, responseStream: true,
    requestSerialize: json.serialize, requestDeserialize: json.deserialize,
    responseSerialize: json.serialize, responseDeserialize: json.deserialize,
  },
  Fail: {
    path: '/trellis.test.Echo/Fail', requestStream: false, responseStream: false,
    requestSerialize: json.serialize, requestDeserialize: json.deserialize,
    responseSerialize: json.serialize, responseDeserialize: json.deserialize,
  },
};

export const EchoClient = grpc.makeGenericClientConstructor(ECHO_SERVICE, 'Echo');

export async function startGrpcApp(name: string): Promise<TestApp> {
  const seen: TestApp['seen'] = [];
  const server = new grpc.Server();
  server.addService(ECHO_SERVICE, {
    Echo: (call: grpc.ServerUnaryCall<Record<string, unknown>, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      seen.push({ method: 'POST', path: '/trellis.test.Echo/Echo', headers: call.metadata.getMap() });
      const md = new grpc.Metadata();
      md.set('x-app', name);
      call.sendMetadata(md);
      cb(null, { app: name, echo: call.request, peer: call.metadata.get('x-trellis-peer')[0] ?? null });
    },
    Count: (call: grpc.ServerWritableStream<{ n: number }, unknown>) => {
      for (let i = 0; i < call.request.n; i++) call.write({ i, app: name });
      call.end();
    },
    Chat: (call: grpc.ServerDuplexStream<{ text: string }, unknown>) => {
      call.on('data', (m: { text: string }) => call.write({ text: m.text.toUpperCase(), app: name }));
      call.on('end', () => call.end());
    },
    Fail: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
      cb({ code: grpc.status.FAILED_PRECONDITION, details: 'failing on purpose' } as grpc.ServiceError, null);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return {
    name, address: `127.0.0.1:${port}`, port, seen,
    close: () => new Promise((resolve) => server.tryShutdown(() => resolve())),
  };
}

/** Echoes bytes back, prefixed once with "<name>:" so tests see which instance answered. */
export async function startTcpEcho(name: string): Promise<TestApp> {
  const seen: TestApp['seen'] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    seen.push({ method: 'TCP', path: '', headers: {} });
    socket.write(`${name}:`);
    socket.pipe(socket);
    socket.on('error', () => {});
  });
  await listen(server);
  return {
    name, ...addressOf(server), seen,
    close: () => { for (const s of sockets) s.destroy(); return closeServer(server); },
  };
}

export async function startWsApp(name: string): Promise<TestApp> {
  const seen: TestApp['seen'] = [];
  const server = http.createServer((_req, res) => { res.writeHead(426); res.end(); });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws, req) => {
    seen.push({ method: 'GET', path: req.url ?? '', headers: req.headers });
    ws.on('message', (data) => ws.send(`${name}:${data.toString()}`));
  });
  await listen(server);
  return {
    name, ...addressOf(server), seen,
    close: async () => { for (const c of wss.clients) c.terminate(); wss.close(); await closeServer(server); },
  };
}

function closeServer(server: net.Server | http2.Http2Server): Promise<void> {
  return new Promise((resolve) => {
    (server as net.Server & { closeAllConnections?: () => void }).closeAllConnections?.();
    server.close(() => resolve());
  });
}

/** A plain HTTP/1.1 request with keep-alive off, returning status, headers and body text. */
export function httpGet(address: string, path: string, headers: Record<string, string> = {}, method = 'GET', body?: string):
  Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string; json: () => any }> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, path, method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, json: () => JSON.parse(text) });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Answers counted by the app that gave them (`x-app`) and by status (0: a connection error). */
export interface AnswerTally { apps: Record<string, number>; statuses: Record<number, number> }

/** Sends `count` requests over `concurrency` keep-alive connections (default 20) and tallies the answers. */
export async function tallyAnswers(address: string, count: number,
  opts: { path?: string; headers?: Record<string, string>; concurrency?: number } = {}): Promise<AnswerTally> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency ?? 20 });
  const apps: Record<string, number> = {};
  const statuses: Record<number, number> = {};
  let next = 0;
  const one = () => new Promise<void>((resolve) => {
    const req = http.request({ host, port, path: opts.path ?? '/api/x', headers: opts.headers, agent }, (res) => {
      res.resume();
      res.on('end', () => {
        statuses[res.statusCode ?? 0] = (statuses[res.statusCode ?? 0] ?? 0) + 1;
        const app = String(res.headers['x-app'] ?? 'none');
        apps[app] = (apps[app] ?? 0) + 1;
        resolve();
      });
    });
    req.on('error', () => { statuses[0] = (statuses[0] ?? 0) + 1; resolve(); });
    req.end();
  });
  const worker = async () => { while (next++ < count) await one(); };
  await Promise.all(Array.from({ length: opts.concurrency ?? 20 }, worker));
  agent.destroy();
  return { apps, statuses };
}
