/**
 * The one table of filters, in the order they run. Each entry is a factory that builds its filter
 * once per config version, or returns null when its policy is absent.
 *
 *   outbound (app → mesh):   SERVICE_OUTBOUND → route dispatch → RULE_FILTERS → Router (terminal)
 *   inbound  (mesh → app):   SERVICE_INBOUND → AppForwarder (terminal)
 */
import type { RuleFilterFactory, ServiceFilterFactory } from '../pipeline/factory.js';
import { inboundIdentityFactory } from './inbound-identity.js';
import { requestContextFactory } from './request-context.js';

export const SERVICE_OUTBOUND: readonly ServiceFilterFactory[] = [
  requestContextFactory,
];

export const RULE_FILTERS: readonly RuleFilterFactory[] = [];

export const SERVICE_INBOUND: readonly ServiceFilterFactory[] = [
  inboundIdentityFactory,
  requestContextFactory,
];
