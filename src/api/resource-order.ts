/**
 * The one order of resources by name, wherever precedence or output order depends on it (route
 * tables, the first TrafficPolicy or JWTAuthentication of a service, authorization policies, lists):
 * code-point order of `metadata.name`, as Gateway API's tie-break ("alphabetical by name") is
 * implemented in Go. Not `localeCompare`: locale collation can order differently, and loading its
 * data costs the proxy ~2.7 MiB.
 */
export function byName(a: { metadata: { name: string } }, b: { metadata: { name: string } }): number {
  return a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
}
