/**
 * The one table of filters, in the order they run. Each entry is a factory that builds its filter
 * once per config version, or returns null when its policy is absent.
 *
 *   outbound (app → mesh):   SERVICE_OUTBOUND → route dispatch → RULE_FILTERS → Router (terminal)
 *   inbound  (mesh → app):   SERVICE_INBOUND → AppForwarder (terminal)
 */
import type { RuleFilterFactory, ServiceFilterFactory } from '../pipeline/factory.js';
import { circuitBreakerFactory } from './circuit-breaker.js';
import { inboundIdentityFactory } from './inbound-identity.js';
import { jwtAuthenticationFactory } from './jwt-authentication.js';
import { authorizationFactory } from './authorization.js';
import { faultInjectionFactory } from './fault-injection.js';
import { requestHeaderModifierFactory, responseHeaderModifierFactory } from './header-modifier.js';
import { backendRequestTimeoutFactory, inboundDeadlineFactory, requestTimeoutFactory } from './timeout.js';
import { rateLimitFactory } from './rate-limit.js';
import { requestContextFactory } from './request-context.js';
import { retryFactory } from './retry.js';
import { tracingFactory } from './tracing.js';
import { requestMirrorFactory } from './request-mirror.js';

export const SERVICE_OUTBOUND: readonly ServiceFilterFactory[] = [
  tracingFactory, // MeshConfig.tracing: continue W3C/B3 context, CLIENT span per hop, root sampling; absent without otlpEndpoint
  requestContextFactory,
  circuitBreakerFactory, // TrafficPolicy.circuitBreaker of the destination: 503 CIRCUIT_OPEN on overflow
];

export const RULE_FILTERS: readonly RuleFilterFactory[] = [
  requestHeaderModifierFactory, // RequestHeaderModifier: set/add/remove request headers (x-trellis-* refused → NACK)
  responseHeaderModifierFactory, // ResponseHeaderModifier: set/add/remove response headers
  requestTimeoutFactory, // timeouts.request (else TrafficPolicy.timeouts.request): whole request incl. fault delay and retries → 504
  faultInjectionFactory, // FaultInjection: delay {fixed, percent}, abort {status, percent} → FAULT_INJECTED
  requestMirrorFactory, // RequestMirror: a percent of requests copied (bounded body) to another backend, response discarded
  retryFactory, // rule.retry: each try re-runs only what follows (backendRequest timeout, Router); budget + maxRetries gate it
  backendRequestTimeoutFactory, // timeouts.backendRequest: per attempt, so it sits after retry, right before the Router
];

export const SERVICE_INBOUND: readonly ServiceFilterFactory[] = [
  tracingFactory, // MeshConfig.tracing: SERVER span per hop (first, so refusals below are traced too)
  inboundIdentityFactory,
  jwtAuthenticationFactory, // JWTAuthentication of this service: Bearer token verified (jose) → 401 UNAUTHENTICATED; claims for authorization
  authorizationFactory, // AuthorizationPolicy + MeshConfig authorization.default on the verified identity and normalised path → 403 FORBIDDEN
  inboundDeadlineFactory, // the caller's x-trellis-deadline (read by ingress): the app may not outwait it → 504
  rateLimitFactory, // TrafficPolicy.rateLimit of this service, per verified source identity when perSource
  requestContextFactory,
];
