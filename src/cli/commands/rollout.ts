/**
 * `trellis rollout status [SERVICE]`, `trellis rollout promote SERVICE`, `trellis rollout abort SERVICE`
 * (definitions: ../program/rollout.ts), through the SDK: GET /api/v1/rollouts[/SERVICE],
 * POST /api/v1/rollouts/SERVICE/promote|abort. `-o yaml|json` prints the RolloutStatus objects.
 */
import type { RolloutStatus } from '../../sdk/client.js';
import { renderTable, toJson, toYaml, type OutputFormat } from '../output.js';
import { clientFor, handleApiError, type ClientCliOptions } from './resources.js';

const labels = (m: Record<string, string>) => Object.keys(m).sort().map((k) => `${k}=${m[k]}`).join(',') || '-';
const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

/** The step column: "2/4 (25%)". */
function stepText(s: RolloutStatus): string {
  return `${s.step + 1}/${s.steps.length} (${s.steps[s.step] ?? '-'}%)`;
}

/** One rollout in detail, for people. */
export function formatRolloutStatus(s: RolloutStatus): string {
  const lines: string[] = [];
  const put = (k: string, v: string) => lines.push(`${(k + ':').padEnd(16)}${v}`);
  put('Rollout', `${s.name} (service ${s.service})`);
  put('Phase', s.phase);
  put('Step', `${stepText(s)} of steps [${s.steps.join(', ')}], interval ${s.interval}`);
  put('Traffic', s.trafficSplit ? `stable ${labels(s.stable)} ${100 - s.canaryWeight}%, canary ${labels(s.canary)} ${s.canaryWeight}%` : `not split yet (stable ${labels(s.stable)}, canary ${labels(s.canary)})`);
  put('Message', s.message);
  if (s.warning) put('Warning', s.warning);
  if (s.nextAnalysisAt) put('Next analysis', s.nextAnalysisAt);
  if (s.lastAnalysis) {
    const a = s.lastAnalysis;
    const m = [`${a.requests} requests`];
    if (a.successRate !== undefined) m.push(`success ${pct(a.successRate)}`);
    if (a.p99Ms !== undefined) m.push(`p99 ${a.p99Ms}ms`);
    put('Last analysis', `${a.result} at ${a.at}: ${m.join(', ')}${a.result !== 'passed' ? ` (${a.reason})` : ''}`);
  }
  if (s.holds > 0) put('Holds', String(s.holds));
  put('Started', s.startedAt);
  lines.push('History:');
  const table = renderTable(['AT', 'PHASE', 'STEP', 'CANARY', 'REASON'],
    s.history.map((h) => [h.at, h.phase, `${h.step + 1}/${s.steps.length}`, `${h.canaryWeight}%`, h.reason]));
  return lines.join('\n') + '\n' + table.split('\n').map((l) => (l ? `  ${l}` : l)).join('\n');
}

export function formatRolloutList(list: RolloutStatus[]): string {
  if (list.length === 0) return 'No Rollouts.\n';
  return renderTable(['SERVICE', 'ROLLOUT', 'PHASE', 'STEP', 'CANARY', 'STABLE', 'CANARY LABELS', 'MESSAGE'],
    list.map((s) => [s.service, s.name, s.phase, stepText(s), s.trafficSplit ? `${s.canaryWeight}%` : '-', labels(s.stable), labels(s.canary), s.message]));
}

function print(value: RolloutStatus | RolloutStatus[], format: OutputFormat): void {
  if (format === 'json') process.stdout.write(toJson(value));
  else if (format === 'yaml') process.stdout.write(toYaml(value));
  else process.stdout.write(Array.isArray(value) ? formatRolloutList(value) : formatRolloutStatus(value));
}

export async function runRolloutStatus(service: string | undefined, opts: ClientCliOptions & { output: OutputFormat }): Promise<void> {
  try {
    const client = clientFor(opts);
    print(service ? await client.rolloutStatus(service) : await client.rollouts(), opts.output);
  } catch (err) {
    handleApiError(err);
  }
}

export async function runRolloutPromote(service: string, opts: ClientCliOptions & { output: OutputFormat }): Promise<void> {
  try {
    print(await clientFor(opts).promoteRollout(service), opts.output);
  } catch (err) {
    handleApiError(err);
  }
}

export async function runRolloutAbort(service: string, opts: ClientCliOptions & { output: OutputFormat }): Promise<void> {
  try {
    print(await clientFor(opts).abortRollout(service), opts.output);
  } catch (err) {
    handleApiError(err);
  }
}
