/**
 * The OpenAPI 3.1 document of the REST API, generated from the zod schemas (z.toJSONSchema):
 * the schemas are written once, in src/api/schema and src/control-plane/contract.ts.
 */
import { z } from 'zod';
import { KINDS, Resource } from '../../../api/schema/resources.js';
import {
  ApplyRequest, ApplyResponse, DeleteResponse, DenialsResponse, ErrorBody, EventStreamMessage, HealthResponse, Overview, ProxiesResponse, ResourceList,
  ServiceDescription, ServiceSummary, StatsResponse, StatusResponse, TapStreamMessage, TokenRequest, TokenResponse,
} from '../../contract.js';
import { RolloutList, RolloutStatus } from '../../../api/schema/rollout.js';

type JsonSchema = Record<string, unknown>;

function schema(s: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const out = z.toJSONSchema(s, { io, unrepresentable: 'any', target: 'draft-2020-12' }) as JsonSchema;
  delete out.$schema;
  return out;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (name: string, description = 'OK') => ({ description, content: { 'application/json': { schema: ref(name) } } });
const errorResponse = (description: string) => json('ErrorBody', description);

export function buildOpenApiDocument(opts: { version?: string } = {}): Record<string, unknown> {
  const components: Record<string, JsonSchema> = {
    Resource: schema(Resource, 'output'),
    ResourceInput: schema(Resource, 'input'),
    ErrorBody: schema(ErrorBody, 'output'),
    ApplyRequest: schema(ApplyRequest, 'input'),
    ApplyResponse: schema(ApplyResponse, 'output'),
    ResourceList: schema(ResourceList, 'output'),
    DeleteResponse: schema(DeleteResponse, 'output'),
    TokenRequest: schema(TokenRequest, 'input'),
    TokenResponse: schema(TokenResponse, 'output'),
    ServiceList: schema(z.array(ServiceSummary), 'output'),
    ServiceDescription: schema(ServiceDescription, 'output'),
    ProxiesResponse: schema(ProxiesResponse, 'output'),
    StatusResponse: schema(StatusResponse, 'output'),
    HealthResponse: schema(HealthResponse, 'output'),
    StatsResponse: schema(StatsResponse, 'output'),
    TapStreamMessage: schema(TapStreamMessage, 'output'),
    DenialsResponse: schema(DenialsResponse, 'output'),
    Overview: schema(Overview, 'output'),
    EventStreamMessage: schema(EventStreamMessage, 'output'),
    RolloutStatus: schema(RolloutStatus, 'output'),
    RolloutList: schema(RolloutList, 'output'),
  };
  // The apply request carries resources in their input form.
  (components.ApplyRequest as { properties: Record<string, unknown> }).properties.resources = { type: 'array', items: ref('ResourceInput') };

  const kindParam = {
    name: 'kind', in: 'path', required: true,
    description: 'Resource kind, case-insensitive, singular or plural (e.g. Service, services, httproutes)',
    schema: { type: 'string', examples: KINDS },
  };
  const nameParam = { name: 'name', in: 'path', required: true, schema: { type: 'string' } };
  const serviceParam = { name: 'service', in: 'path', required: true, description: 'The service the Rollout names (spec.service)', schema: { type: 'string' } };
  const windowParam = { name: 'window', in: 'query', required: false, description: 'Stats window, a duration between 5s and 15m', schema: { type: 'string', default: '30s' } };
  const historyParam = { name: 'history', in: 'query', required: false, description: 'Per-service points over this long before now (0: none; at most 15m)', schema: { type: 'string', default: '5m' } };
  const unauthorized = { 401: errorResponse('Admin token required (API bound to a non-loopback address)') };

  return {
    openapi: '3.1.0',
    info: {
      title: 'Trellis control plane API',
      version: opts.version ?? '0.1.0',
      description: 'Manage mesh resources, join tokens, services and proxies. When the API listens on a non-loopback address, every /api/ route requires `Authorization: Bearer <admin token>` (file `admin-token` in the data dir).',
    },
    components: {
      schemas: components,
      securitySchemes: { adminToken: { type: 'http', scheme: 'bearer' } },
    },
    security: [{}, { adminToken: [] }],
    paths: {
      '/healthz': { get: { operationId: 'health', summary: 'Liveness', security: [], responses: { 200: json('HealthResponse', 'alive') } } },
      '/readyz': {
        get: {
          operationId: 'ready', summary: 'Readiness', security: [],
          responses: { 200: json('HealthResponse', 'ready'), 503: json('HealthResponse', 'not ready') },
        },
      },
      '/metrics': { get: { operationId: 'metrics', summary: 'Prometheus metrics', security: [], responses: { 200: { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } } } } },
      '/api/openapi.json': { get: { operationId: 'openapi', summary: 'This document', responses: { 200: { description: 'OpenAPI 3.1 document', content: { 'application/json': { schema: { type: 'object' } } } } } } },
      '/api/v1/status': { get: { operationId: 'status', summary: 'Control plane status: config version, CA, proxies', responses: { 200: json('StatusResponse'), ...unauthorized } } },
      '/api/v1/apply': {
        post: {
          operationId: 'apply',
          summary: 'Validate and apply resources atomically (all or nothing); dryRun reports what would change',
          requestBody: { required: true, content: json('ApplyRequest').content },
          responses: {
            200: json('ApplyResponse', 'applied (or would be, with dryRun)'),
            400: errorResponse('INVALID: the batch was refused whole; errors[] lists field paths and reasons'),
            413: errorResponse('REQUEST_TOO_LARGE'),
            ...unauthorized,
          },
        },
      },
      '/api/v1/resources/{kind}': {
        get: {
          operationId: 'list', summary: 'List resources of a kind', parameters: [kindParam],
          responses: { 200: json('ResourceList', 'resources'), 404: errorResponse('UNKNOWN_KIND'), ...unauthorized },
        },
      },
      '/api/v1/resources/{kind}/{name}': {
        get: {
          operationId: 'get', summary: 'Get one resource', parameters: [kindParam, nameParam],
          responses: { 200: json('Resource', 'the resource'), 404: errorResponse('NOT_FOUND or UNKNOWN_KIND'), ...unauthorized },
        },
        delete: {
          operationId: 'delete', summary: 'Delete one resource', parameters: [kindParam, nameParam],
          responses: { 200: json('DeleteResponse', 'deleted'), 404: errorResponse('NOT_FOUND or UNKNOWN_KIND'), ...unauthorized },
        },
      },
      '/api/v1/tokens': {
        post: {
          operationId: 'createToken', summary: 'Create a join token for a service',
          requestBody: { required: true, content: json('TokenRequest').content },
          responses: { 200: json('TokenResponse', 'token'), 400: errorResponse('INVALID'), ...unauthorized },
        },
      },
      '/api/v1/services': {
        get: { operationId: 'services', summary: 'Services: Service resources and registered services', responses: { 200: json('ServiceList'), ...unauthorized } },
      },
      '/api/v1/services/{name}': {
        get: {
          operationId: 'describeService', summary: 'A service with its instances, routes and policies', parameters: [nameParam],
          responses: { 200: json('ServiceDescription'), 404: errorResponse('NOT_FOUND'), ...unauthorized },
        },
      },
      '/api/v1/proxies': {
        get: { operationId: 'proxies', summary: 'Every proxy: connection, sent/acked version, last NACK, certificate expiry', responses: { 200: json('ProxiesResponse'), ...unauthorized } },
      },
      '/api/v1/stats': {
        get: {
          operationId: 'stats',
          summary: 'Golden metrics from the proxies: request rate, success rate, p50/p95/p99 per service (inbound view preferred), per route (outbound) or per edge',
          parameters: [
            { name: 'service', in: 'query', required: false, description: 'Only this (destination) service; for edges, as source or destination', schema: { type: 'string' } },
            { name: 'window', in: 'query', required: false, description: 'Duration between 1s and 15m (default 1m)', schema: { type: 'string', default: '1m' } },
            { name: 'by', in: 'query', required: false, schema: { type: 'string', enum: ['service', 'route', 'edge'], default: 'service' } },
          ],
          responses: { 200: json('StatsResponse'), 400: errorResponse('INVALID: window or by'), ...unauthorized },
        },
      },
      '/api/v1/tap': {
        get: {
          operationId: 'tap',
          summary: 'Live requests of every instance of a service, as Server-Sent Events until the client disconnects',
          description: 'Each event\'s `event:` field is its type and its `data:` one TapStreamMessage as JSON: `tap` (one request seen by a proxy of the service, inbound or outbound, request headers redacted and truncated) or `status` (at the start, every 5s and on change: proxies tapped, events dropped so far). A `: heartbeat` comment comes every 15s. Every hop is bounded (events per second per proxy, the proxy\'s batch buffer and config-stream backlog, this client\'s queue); what a bound drops is counted in `dropped`, never waited for.',
          parameters: [
            { name: 'service', in: 'query', required: true, schema: { type: 'string' } },
            { name: 'path', in: 'query', required: false, description: 'Path prefix (normalised path, without query), e.g. /api', schema: { type: 'string' } },
            { name: 'method', in: 'query', required: false, description: 'HTTP method, case-insensitive', schema: { type: 'string' } },
          ],
          responses: {
            200: { description: 'event stream', content: { 'text/event-stream': { schema: ref('TapStreamMessage') } } },
            400: errorResponse('INVALID: service, path or method (errors[] has the field paths)'),
            429: errorResponse('TOO_MANY_TAPS: the concurrent tap bound is reached'),
            ...unauthorized,
          },
        },
      },
      '/api/v1/denials': {
        get: {
          operationId: 'denials',
          summary: 'The most recent authorization denials (403 FORBIDDEN, 401 UNAUTHENTICATED) reported by the proxies, newest first',
          parameters: [{ name: 'service', in: 'query', required: false, description: 'Only denials with this destination service', schema: { type: 'string' } }],
          responses: { 200: json('DenialsResponse'), ...unauthorized },
        },
      },
      '/api/v1/overview': {
        get: {
          operationId: 'overview',
          summary: 'What the dashboard shows, at once: services, golden metrics by service / edge / route, routes and weights, authorization policies and recent denials, proxies',
          parameters: [windowParam, { ...historyParam, schema: { type: 'string', default: '0' } }],
          responses: { 200: json('Overview'), 400: errorResponse('INVALID: window or history'), ...unauthorized },
        },
      },
      '/api/v1/rollouts': {
        get: {
          operationId: 'rollouts',
          summary: 'The status of every Rollout: phase (Pending, Progressing, Succeeded, RolledBack, Aborted), step, canary weight, last analysis, history',
          responses: { 200: json('RolloutList'), ...unauthorized },
        },
      },
      '/api/v1/rollouts/{service}': {
        get: {
          operationId: 'rolloutStatus', summary: 'The status of the Rollout of a service', parameters: [serviceParam],
          responses: { 200: json('RolloutStatus'), 404: errorResponse('NOT_FOUND: no Rollout for the service'), ...unauthorized },
        },
      },
      '/api/v1/rollouts/{service}/promote': {
        post: {
          operationId: 'promoteRollout',
          summary: 'Skip the remaining steps: the canary gets 100% (Succeeded). No request body. Already Succeeded: unchanged',
          parameters: [serviceParam],
          responses: {
            200: json('RolloutStatus', 'the new status'),
            404: errorResponse('NOT_FOUND: no Rollout for the service'),
            409: errorResponse('CONFLICT: no ready instance has the canary labels'),
            503: errorResponse('UNAVAILABLE (several control planes): the control plane leading the rollouts did not answer in time, or stopped leading meanwhile'),
            ...unauthorized,
          },
        },
      },
      '/api/v1/rollouts/{service}/abort': {
        post: {
          operationId: 'abortRollout',
          summary: 'Stop the rollout: the canary gets 0% (Aborted) until the Rollout changes or is deleted. No request body. Already RolledBack or Aborted: unchanged',
          parameters: [serviceParam],
          responses: {
            200: json('RolloutStatus', 'the new status'),
            404: errorResponse('NOT_FOUND: no Rollout for the service'),
            503: errorResponse('UNAVAILABLE (several control planes): the control plane leading the rollouts did not answer in time, or stopped leading meanwhile'),
            ...unauthorized,
          },
        },
      },
      '/api/v1/events': {
        get: {
          operationId: 'events',
          summary: 'The dashboard\'s live feed: an Overview now and every ~2 s, as Server-Sent Events until the client disconnects',
          description: 'Each event is `event: overview` with one EventStreamMessage as JSON in `data:`; the first carries `history` (per-service points every 10 s). A `: heartbeat` comment comes every 15 s. A client that reads too slowly misses overviews (trellis_cp_events_dropped_total) instead of making the server buffer them; the next one it gets is whole.',
          parameters: [windowParam, historyParam],
          responses: {
            200: { description: 'event stream', content: { 'text/event-stream': { schema: ref('EventStreamMessage') } } },
            400: errorResponse('INVALID: window or history'),
            429: errorResponse('TOO_MANY_STREAMS: the concurrent event-stream bound is reached'),
            ...unauthorized,
          },
        },
      },
    },
  };
}
