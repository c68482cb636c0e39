/** Self time per function of a V8 .cpuprofile (idle excluded): where a process spent its CPU. */
export interface CpuProfileSummary { totalMs: number; top: Array<{ fn: string; selfPct: number }> }

interface CpuProfile { nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>; samples: number[]; timeDeltas: number[] }

export function summariseCpuProfile(p: CpuProfile, n = 20): CpuProfileSummary {
  const byId = new Map(p.nodes.map((x) => [x.id, x]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  let total = 0;
  const fnTime = new Map<string, number>();
  for (const [id, us] of self) {
    const cf = byId.get(id)!.callFrame;
    if (cf.functionName === '(idle)' || cf.functionName === '(program)') continue;
    total += us;
    const file = cf.url.replace(/^file:\/\/.*?\/dist\//, 'dist/');
    const fn = `${cf.functionName || '(anonymous)'} ${file ? `${file}:${cf.lineNumber + 1}` : ''}`.trim();
    fnTime.set(fn, (fnTime.get(fn) ?? 0) + us);
  }
  const top = [...fnTime].sort((a, b) => b[1] - a[1]).slice(0, n);
  return { totalMs: Math.round(total / 1000), top: top.map(([fn, us]) => ({ fn, selfPct: Math.round((1000 * us) / total) / 10 })) };
}
