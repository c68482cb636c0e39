/**
 * Resource commands: `apply -f FILE|DIR|-`, `get KIND [NAME]`, `delete KIND NAME`, `describe service NAME`
 * (definitions: ../program/resources.ts). They talk to the API only through the SDK (TrellisClient).
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { TrellisApiError, TrellisClient, resolveKind } from '../../sdk/client.js';
import {
  formatApplyResults, formatFieldErrors, formatResources, formatServiceDescription, type OutputFormat,
} from '../output.js';

export interface ClientCliOptions { api?: string }

export function clientFor(opts: ClientCliOptions): TrellisClient {
  return new TrellisClient(opts.api ? { baseUrl: opts.api } : {});
}

/** A document read from a file, remembered so error paths can be traced back to it. */
interface SourceDoc { value: unknown; origin: string }

/** Prints an API error (with each `path: reason` for a validation error) and sets exit code 1. */
export function handleApiError(err: unknown, sources?: SourceDoc[]): void {
  process.exitCode = 1;
  if (err instanceof TrellisApiError) {
    if (err.errors.length > 0) {
      process.stderr.write(`error: ${err.code === 'INVALID' ? 'invalid resources: nothing was changed' : err.message}\n`);
      process.stderr.write(formatFieldErrors(err.errors));
      if (sources && sources.length > 1) {
        const indexes = [...new Set(err.errors.map((e) => /^resources\[(\d+)\]/.exec(e.path)?.[1]).filter((i): i is string => i !== undefined))];
        for (const i of indexes) {
          const src = sources[Number(i)];
          if (src) process.stderr.write(`  (resources[${i}] is ${src.origin})\n`);
        }
      }
      return;
    }
    process.stderr.write(`error: ${err.message}${err.code && err.status ? ` (${err.code})` : ''}\n`);
    return;
  }
  process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Parses YAML or JSON, one or many documents; arrays and `kind: List` are flattened. */
export function parseDocuments(text: string, origin: string): SourceDoc[] {
  const out: SourceDoc[] = [];
  const docs = YAML.parseAllDocuments(text);
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((doc, i) => {
    if (doc.errors.length > 0) {
      throw new Error(`${origin}${list.length > 1 ? ` (document ${i + 1})` : ''}: ${doc.errors[0]!.message}`);
    }
    const value: unknown = doc.toJS();
    const where = list.length > 1 ? `${origin} (document ${i + 1})` : origin;
    if (value === null || value === undefined) return;
    if (Array.isArray(value)) {
      value.forEach((v, j) => out.push({ value: v, origin: `${where} [${j}]` }));
    } else if (typeof value === 'object' && (value as { kind?: unknown }).kind === 'List' && Array.isArray((value as { items?: unknown }).items)) {
      ((value as { items: unknown[] }).items).forEach((v, j) => out.push({ value: v, origin: `${where} items[${j}]` }));
    } else {
      out.push({ value, origin: where });
    }
  });
  return out;
}

/** Reads FILE, every .yaml/.yml/.json of DIR (sorted), or stdin for "-". */
export async function readResourceFiles(paths: string[]): Promise<SourceDoc[]> {
  const out: SourceDoc[] = [];
  for (const path of paths) {
    if (path === '-') {
      out.push(...parseDocuments(await readStdin(), 'stdin'));
      continue;
    }
    let stat;
    try {
      stat = await fsp.stat(path);
    } catch {
      throw new Error(`${path}: no such file or directory`);
    }
    if (stat.isDirectory()) {
      const names = (await fsp.readdir(path)).filter((n) => /\.(ya?ml|json)$/i.test(n)).sort();
      for (const name of names) {
        const file = join(path, name);
        out.push(...parseDocuments(await fsp.readFile(file, 'utf8'), file));
      }
    } else {
      out.push(...parseDocuments(await fsp.readFile(path, 'utf8'), path));
    }
  }
  return out;
}

function kindArg(input: string) {
  const kind = resolveKind(input);
  if (!kind) {
    throw new Error(`unknown kind "${input}": use one of MeshConfig, Service, HTTPRoute, TCPRoute, TrafficPolicy, AuthorizationPolicy, JWTAuthentication, Rollout`);
  }
  return kind;
}

export async function runApply(opts: ClientCliOptions & { filename: string[]; dryRun?: boolean; output: OutputFormat }): Promise<void> {
  let sources: SourceDoc[] = [];
  try {
    sources = await readResourceFiles(opts.filename);
    if (sources.length === 0) throw new Error('no resources found in the input');
    const res = await clientFor(opts).apply(sources.map((s) => s.value), { dryRun: Boolean(opts.dryRun) });
    process.stdout.write(formatApplyResults(res.results, res.dryRun, opts.output));
  } catch (err) {
    handleApiError(err, sources);
  }
}

export async function runGet(kindInput: string, name: string | undefined, opts: ClientCliOptions & { output: OutputFormat }): Promise<void> {
  try {
    const kind = kindArg(kindInput);
    const client = clientFor(opts);
    if (name) {
      const r = await client.get(kind, name);
      process.stdout.write(formatResources(kind, [r], opts.output, true));
    } else {
      process.stdout.write(formatResources(kind, await client.list(kind), opts.output));
    }
  } catch (err) {
    handleApiError(err);
  }
}

export async function runDelete(kindInput: string, name: string, opts: ClientCliOptions): Promise<void> {
  try {
    const kind = kindArg(kindInput);
    await clientFor(opts).delete(kind, name);
    process.stdout.write(`${kind.toLowerCase()}/${name} deleted\n`);
  } catch (err) {
    handleApiError(err);
  }
}

export async function runDescribeService(name: string, opts: ClientCliOptions & { output: OutputFormat }): Promise<void> {
  try {
    const client = clientFor(opts);
    const d = await client.describeService(name);
    process.stdout.write(formatServiceDescription(d, opts.output));
    if (opts.output === 'table' && d.rollouts.length > 0) {
      // The rollout controller's view of it (trellis rollout status NAME for the history).
      const s = await client.rolloutStatus(name).catch(() => undefined);
      if (s) process.stdout.write(`  status: ${s.phase}, step ${s.step + 1}/${s.steps.length}, canary ${s.trafficSplit ? `${s.canaryWeight}%` : 'not split yet'}: ${s.message}\n`);
    }
  } catch (err) {
    handleApiError(err);
  }
}
