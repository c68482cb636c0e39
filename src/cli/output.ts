/**
 * How the CLI prints: tables for people, YAML and JSON for tools (`-o table|yaml|json`).
 * YAML output of resources is multi-document and JSON output is an array (or one object):
 * both can be fed back to `trellis apply -f`.
 */
import YAML from 'yaml';
import type { Kind, Resource } from '../api/schema/resources.js';
import type { ApplyResult, ServiceDescription, ServiceSummary } from '../sdk/client.js';

import type { OutputFormat } from './output-format.js';

export { OUTPUT_FORMATS, parseOutputFormat, type OutputFormat } from './output-format.js';

export function toJson(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}

export function toYaml(value: unknown): string {
  return YAML.stringify(value, { lineWidth: 0 });
}

/** Several documents as one multi-document YAML stream. */
export function toYamlDocuments(values: unknown[]): string {
  return values.map((v) => toYaml(v)).join('---\n');
}

/** Aligned columns, headers in capitals, two spaces between columns. */
export function renderTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

function labels(map: Record<string, string> | undefined): string {
  const entries = Object.entries(map ?? {});
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(',') : '-';
}

function backends(refs: { name: string; weight?: number; subset?: Record<string, string> }[] | undefined): string {
  if (!refs || refs.length === 0) return '-';
  return refs.map((b) => `${b.name}${b.subset ? `[${labels(b.subset)}]` : ''}${b.weight !== undefined && refs.length > 1 ? `:${b.weight}` : ''}`).join(',');
}

/** The table columns for one kind: [headers, row-of-resource]. */
function columnsFor(kind: Kind): { headers: string[]; row: (r: Resource) => string[] } {
  switch (kind) {
    case 'MeshConfig':
      return {
        headers: ['NAME', 'MTLS', 'AUTHZ DEFAULT', 'CERT TTL'],
        row: (r) => (r.kind === 'MeshConfig' ? [r.metadata.name, r.spec.mtls, r.spec.authorization.default, r.spec.certificateTTL] : [r.metadata.name]),
      };
    case 'Service':
      return {
        headers: ['NAME', 'PROTOCOL', 'PORT'],
        row: (r) => (r.kind === 'Service' ? [r.metadata.name, r.spec.protocol, r.spec.port !== undefined ? String(r.spec.port) : '-'] : [r.metadata.name]),
      };
    case 'HTTPRoute':
      return {
        headers: ['NAME', 'PARENTS', 'RULES', 'BACKENDS'],
        row: (r) => (r.kind === 'HTTPRoute'
          ? [r.metadata.name, r.spec.parentRefs.map((p) => p.name).join(','), String(r.spec.rules.length),
            [...new Set(r.spec.rules.map((rule) => backends(rule.backendRefs)))].join(' | ')]
          : [r.metadata.name]),
      };
    case 'TCPRoute':
      return {
        headers: ['NAME', 'PARENTS', 'BACKENDS'],
        row: (r) => (r.kind === 'TCPRoute'
          ? [r.metadata.name, r.spec.parentRefs.map((p) => p.name).join(','), r.spec.rules.map((rule) => backends(rule.backendRefs)).join(' | ')]
          : [r.metadata.name]),
      };
    case 'TrafficPolicy':
      return {
        headers: ['NAME', 'TARGET', 'LOAD BALANCER', 'FEATURES'],
        row: (r) => {
          if (r.kind !== 'TrafficPolicy') return [r.metadata.name];
          const s = r.spec;
          const features = (['healthCheck', 'outlierDetection', 'circuitBreaker', 'retryBudget', 'rateLimit', 'timeouts'] as const)
            .filter((f) => s[f] !== undefined);
          return [r.metadata.name, s.targetRef.name, s.loadBalancer?.type ?? 'RoundRobin', features.join(',') || '-'];
        },
      };
    case 'AuthorizationPolicy':
      return {
        headers: ['NAME', 'TARGET', 'ACTION', 'RULES'],
        row: (r) => (r.kind === 'AuthorizationPolicy' ? [r.metadata.name, r.spec.targetRef.name, r.spec.action, String(r.spec.rules.length)] : [r.metadata.name]),
      };
    case 'JWTAuthentication':
      return {
        headers: ['NAME', 'TARGET', 'ISSUER', 'REQUIRED'],
        row: (r) => (r.kind === 'JWTAuthentication' ? [r.metadata.name, r.spec.targetRef.name, r.spec.issuer, String(r.spec.required)] : [r.metadata.name]),
      };
    case 'Rollout':
      return {
        headers: ['NAME', 'SERVICE', 'STABLE', 'CANARY', 'STEPS', 'INTERVAL'],
        row: (r) => (r.kind === 'Rollout'
          ? [r.metadata.name, r.spec.service, labels(r.spec.stable), labels(r.spec.canary), r.spec.steps.join(','), r.spec.interval]
          : [r.metadata.name]),
      };
  }
}

/** Resources of one kind in the requested format. `single` prints one object rather than a list. */
export function formatResources(kind: Kind, resources: Resource[], format: OutputFormat, single = false): string {
  if (format === 'json') return toJson(single ? resources[0] : resources);
  if (format === 'yaml') return resources.length ? toYamlDocuments(resources) : '';
  if (resources.length === 0) return `No ${kind} resources.\n`;
  const { headers, row } = columnsFor(kind);
  return renderTable(headers, resources.map(row));
}

export function formatApplyResults(results: ApplyResult[], dryRun: boolean, format: OutputFormat): string {
  if (format === 'json') return toJson({ dryRun, results });
  if (format === 'yaml') return toYaml({ dryRun, results });
  return results.map((r) => `${r.kind.toLowerCase()}/${r.name} ${r.action}${dryRun ? ' (dry run)' : ''}`).join('\n') + (results.length ? '\n' : '');
}

export function formatServiceSummaries(services: ServiceSummary[], format: OutputFormat): string {
  if (format === 'json') return toJson(services);
  if (format === 'yaml') return toYaml(services);
  if (services.length === 0) return 'No services.\n';
  return renderTable(['NAME', 'PROTOCOL', 'PORT', 'SOURCE', 'INSTANCES', 'CONNECTED'],
    services.map((s) => [s.name, s.protocol, s.port !== undefined ? String(s.port) : '-', s.source, String(s.instances), String(s.connected)]));
}

function indent(text: string, by = '  '): string {
  return text.split('\n').map((l) => (l ? by + l : l)).join('\n');
}

export function formatServiceDescription(d: ServiceDescription, format: OutputFormat): string {
  if (format === 'json') return toJson(d);
  if (format === 'yaml') return toYaml(d);
  const lines: string[] = [];
  const field = (name: string, value: string) => lines.push(`${(name + ':').padEnd(11)} ${value}`);
  field('Name', d.name);
  field('Protocol', d.protocol);
  field('Port', d.port !== undefined ? String(d.port) : '-');
  field('Source', d.source);
  field('Identity', d.spiffeId);
  lines.push('');
  if (d.instances.length === 0) {
    lines.push('Instances:  none');
  } else {
    lines.push(`Instances:  ${d.instances.length}`);
    lines.push(indent(renderTable(['ID', 'ADDRESS', 'LABELS', 'STATE', 'SENT', 'ACKED', 'LAST NACK', 'CERT EXPIRES'],
      d.instances.map((i) => [
        i.id, i.address, labels(i.labels), i.connected ? 'connected' : 'draining',
        i.lastSentVersion ?? '-', i.ackedVersion ?? '-',
        i.lastNack ? `v${i.lastNack.version}: ${i.lastNack.error}` : '-',
        i.certNotAfter ?? '-',
      ]))).trimEnd());
  }
  const refs = (title: string, list: Resource[]) => {
    lines.push('');
    if (list.length === 0) { lines.push(`${title}:`.padEnd(12) + 'none'); return; }
    lines.push(`${title}:`);
    for (const r of list) {
      let detail = '';
      if (r.kind === 'HTTPRoute' || r.kind === 'TCPRoute') {
        const parents = r.spec.parentRefs.map((p) => p.name);
        detail = parents.includes(d.name) ? `(parent; backends ${r.spec.rules.map((rule) => backends(rule.backendRefs)).join(' | ')})` : `(backend; from ${parents.join(',')})`;
      } else if (r.kind === 'AuthorizationPolicy') {
        detail = `(${r.spec.action}, ${r.spec.rules.length} rule${r.spec.rules.length === 1 ? '' : 's'})`;
      } else if (r.kind === 'TrafficPolicy') {
        detail = `(${r.spec.loadBalancer?.type ?? 'RoundRobin'})`;
      } else if (r.kind === 'JWTAuthentication') {
        detail = `(issuer ${r.spec.issuer})`;
      } else if (r.kind === 'Rollout') {
        detail = `(steps ${r.spec.steps.join(',')})`;
      }
      lines.push(`  ${r.kind}/${r.metadata.name} ${detail}`.trimEnd());
    }
  };
  refs('Routes', d.routes);
  refs('Policies', d.policies);
  refs('Rollouts', d.rollouts);
  return lines.join('\n') + '\n';
}

/** Field errors as the CLI prints them: one `path: reason` per line. */
export function formatFieldErrors(errors: { path: string; message: string }[]): string {
  return errors.map((e) => `${e.path}: ${e.message}`).join('\n') + (errors.length ? '\n' : '');
}
