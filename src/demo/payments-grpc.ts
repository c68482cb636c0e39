/**
 * The demo's one gRPC hop: the Payments service (src/demo/payments.proto, protobuf on the wire via
 * @grpc/proto-loader), served by @grpc/grpc-js behind a `--protocol grpc` sidecar and called by checkout
 * (and by the rogue caller) through their sidecars' `--outbound payments=HOST:PORT` listeners (h2c).
 */
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { repoRoot } from '../shared/repo-root.js';

export const PAYMENTS_SERVICE = 'trellis.demo.payments.v1.Payments';
/** The gRPC method path, as the proxies see it (`POST /package.Service/Method`) and policies name it. */
export const AUTHORIZE_PATH = `/${PAYMENTS_SERVICE}/Authorize`;

export interface AuthorizeRequest { orderId: string; amountCents: number; currency: string }
export interface AuthorizeReply { authorized: boolean; authorizationId: string; caller: string; amountCents: number }

/** The proto ships in the package beside the compiled code's sources (tsc does not copy it to dist/). */
export const PAYMENTS_PROTO = join(repoRoot(), 'src', 'demo', 'payments.proto');

let definition: grpc.ServiceDefinition | undefined;
function paymentsDefinition(): grpc.ServiceDefinition {
  if (!definition) {
    const pkg = protoLoader.loadSync(PAYMENTS_PROTO, { keepCase: false, longs: Number, enums: String, defaults: true });
    const svc = pkg[PAYMENTS_SERVICE];
    if (!svc || !('Authorize' in svc)) throw new Error(`${PAYMENTS_PROTO} does not define service ${PAYMENTS_SERVICE}`);
    definition = svc as grpc.ServiceDefinition;
  }
  return definition;
}

/** Largest amount payments authorizes; above it the call fails with FAILED_PRECONDITION (a business refusal). */
const LIMIT_CENTS = 100_000;

export interface PaymentsServer { address: string; authorized(): number; close(): Promise<void> }

/** The payments app: a gRPC server on 127.0.0.1:0 (its sidecar's --app). */
export async function startPaymentsServer(): Promise<PaymentsServer> {
  const server = new grpc.Server();
  let authorized = 0;
  server.addService(paymentsDefinition(), {
    Authorize: (call: grpc.ServerUnaryCall<AuthorizeRequest, AuthorizeReply>, cb: grpc.sendUnaryData<AuthorizeReply>) => {
      const req = call.request;
      if (!req.orderId) { cb({ code: grpc.status.INVALID_ARGUMENT, details: 'order_id is required' }, null); return; }
      if (req.amountCents > LIMIT_CENTS) { cb({ code: grpc.status.FAILED_PRECONDITION, details: `amount over the ${LIMIT_CENTS / 100} limit` }, null); return; }
      authorized++;
      // The sidecar replaces any client-sent x-trellis-peer with the identity of the verified mTLS peer.
      const caller = String(call.metadata.get('x-trellis-peer')[0] ?? '');
      cb(null, { authorized: true, authorizationId: `auth-${Math.random().toString(36).slice(2, 10)}`, caller, amountCents: req.amountCents });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return {
    address: `127.0.0.1:${port}`,
    authorized: () => authorized,
    close: () => new Promise<void>((resolve) => {
      // Graceful first; in-flight calls are short (unary), so force after a moment.
      const force = setTimeout(() => server.forceShutdown(), 2000);
      server.tryShutdown(() => { clearTimeout(force); resolve(); });
    }),
  };
}

export interface PaymentsCallResult {
  ok: boolean;
  /** grpc status name, e.g. OK, PERMISSION_DENIED. */
  status: string;
  reply?: AuthorizeReply;
  details?: string;
}

type AuthorizeMethod = (req: AuthorizeRequest, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: AuthorizeReply) => void) => void;

/** A Payments client over one channel to a sidecar's --outbound payments listener (plaintext h2c on loopback). */
export class PaymentsClient {
  private readonly client: grpc.Client;
  private readonly authorizeMethod: AuthorizeMethod;

  constructor(outbound: string) {
    const Ctor = grpc.makeGenericClientConstructor(paymentsDefinition(), 'Payments');
    const client = new Ctor(outbound, grpc.credentials.createInsecure());
    this.client = client;
    this.authorizeMethod = (client as unknown as { Authorize: AuthorizeMethod }).Authorize.bind(client);
  }

  /** One unary call; never rejects: a failure is reported with its gRPC status name. */
  authorize(req: AuthorizeRequest, timeoutMs = 5000): Promise<PaymentsCallResult> {
    return new Promise((resolve) => {
      this.authorizeMethod(req, { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (err) resolve({ ok: false, status: grpc.status[err.code] ?? String(err.code), details: err.details });
        else resolve({ ok: true, status: 'OK', ...(res ? { reply: res } : {}) });
      });
    });
  }

  close(): void {
    this.client.close();
  }
}
