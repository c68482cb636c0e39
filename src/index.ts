export * from './api/schema/resources.js';
export * from './api/schema/snapshot.js';
export * from './api/errors.js';
export { TrellisClient, TrellisApiError } from './sdk/client.js';
export * from './api/schema/rollout.js';
