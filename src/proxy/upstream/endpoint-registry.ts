import type { Endpoint } from '../../api/schema/snapshot.js';
import { EndpointState } from './endpoint-state.js';

/**
 * Keeps one EndpointState per (service, instance id, address) across config versions, so health,
 * ejection and latency estimates survive a config swap.
 */
export class EndpointRegistry {
  private readonly states = new Map<string, EndpointState>();

  /** Returns the states for a service's endpoints, creating new ones and refreshing labels. */
  resolve(service: string, endpoints: readonly Endpoint[]): EndpointState[] {
    return endpoints.map((ep) => {
      const key = `${service}|${ep.id}|${ep.address}`;
      let state = this.states.get(key);
      if (!state) {
        state = new EndpointState(ep);
        this.states.set(key, state);
      } else {
        state.labels = ep.labels;
        state.draining = ep.draining;
      }
      return state;
    });
  }

  /** Forgets these endpoints (of clusters that changed), unless a newer state replaced them under the same key. */
  forget(gone: ReadonlyArray<{ service: string; state: EndpointState }>): void {
    for (const { service, state } of gone) {
      const key = `${service}|${state.id}|${state.address}`;
      if (this.states.get(key) === state) this.states.delete(key);
    }
  }

  /** Forgets endpoints no longer present in the live snapshot. */
  retain(live: ReadonlySet<EndpointState>): void {
    for (const [key, state] of this.states) if (!live.has(state)) this.states.delete(key);
  }
}
