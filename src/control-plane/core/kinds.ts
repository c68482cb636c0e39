/** Kind names as users type them: case-insensitive, singular or plural ("services", "httproutes", "mesh-config"). */
import { KINDS, type Kind } from '../../api/schema/resources.js';

const ALIASES: Record<string, Kind> = {};
for (const kind of KINDS) {
  const lower = kind.toLowerCase();
  ALIASES[lower] = kind;
  ALIASES[`${lower}s`] = kind;
  ALIASES[`${lower}es`] = kind;
}
ALIASES['meshconfigs'] = 'MeshConfig';
ALIASES['svc'] = 'Service';
ALIASES['trafficpolicies'] = 'TrafficPolicy';
ALIASES['authorizationpolicies'] = 'AuthorizationPolicy';
ALIASES['authz'] = 'AuthorizationPolicy';
ALIASES['jwt'] = 'JWTAuthentication';

/** Returns the canonical kind for user input, or undefined when it names no kind. */
export function resolveKind(input: string): Kind | undefined {
  return ALIASES[input.trim().toLowerCase().replace(/[-_]/g, '')];
}

export { KINDS };
export type { Kind };
