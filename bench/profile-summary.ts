/**
 * Summarise a V8 CPU profile (`npm run bench -- --cpu-prof DIR` writes one per 0 ms dispatcher run):
 * self time by area (our code, each package, node internals, GC, idle) and the top functions.
 *
 *   npx tsx bench/profile-summary.ts DIR/file.cpuprofile [--top 25]
 *
 * Self time is what a function spent in its own body; the areas add up to the profile's duration.
 */
import { readFileSync } from 'node:fs';
import { runMain, wholeNumberFlag } from '../lib/cli.ts';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Which part of the process a script belongs to: a package, node's own, or ours (by folder). */
export function areaOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) return 'node internals';
  const ours = /\/(?:dist\/)?(connectors|consumers|lib|producers|sandbox)\/([^/]+)/.exec(url);
  return ours ? `ours: ${ours[1]}/${ours[2]}` : url;
}

export interface ProfileSummary {
  totalMs: number;
  areas: Array<{ area: string; ms: number; pct: number }>;
  functions: Array<{ fn: string; area: string; ms: number; pct: number }>;
}

export function summarise(profile: CpuProfile, top: number): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  // timeDeltas[i] is the time before sample i; attribute it to that sample's node.
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const areas = new Map<string, number>();
  const fns = new Map<string, { area: string; us: number }>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const { callFrame: f } = byId.get(id)!;
    const area = areaOf(f.url, f.functionName);
    total += us;
    areas.set(area, (areas.get(area) ?? 0) + us);
    const file = f.url.replace(/^.*\/(node_modules\/|dist\/)?/, '');
    const key = `${f.functionName || '(anonymous)'} ${file}${f.url ? `:${f.lineNumber + 1}` : ''}`;
    const entry = fns.get(key) ?? { area, us: 0 };
    entry.us += us;
    fns.set(key, entry);
  }
  const pct = (us: number): number => Number(((100 * us) / total).toFixed(1));
  return {
    totalMs: Math.round(total / 1000),
    areas: [...areas].sort((a, b) => b[1] - a[1]).map(([area, us]) => ({ area, ms: Math.round(us / 1000), pct: pct(us) })),
    functions: [...fns]
      .sort((a, b) => b[1].us - a[1].us)
      .slice(0, top)
      .map(([fn, { area, us }]) => ({ fn, area, ms: Math.round(us / 1000), pct: pct(us) })),
  };
}

await runMain({
  name: 'bench:profile-summary',
  usage: `Usage: npx tsx bench/profile-summary.ts FILE.cpuprofile [--top N]

Self time of a V8 CPU profile by area (our folders, packages, node internals, GC) and its top N functions (default 25).`,
  options: { top: { type: 'string' } },
  async run({ values, positionals }) {
    const file = positionals[0];
    if (!file) throw new Error('name a .cpuprofile file');
    const s = summarise(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, wholeNumberFlag('top', values.top) ?? 25);
    console.log(`${file}: ${s.totalMs} ms sampled\n\nself time by area:`);
    for (const a of s.areas.filter((x) => x.pct >= 0.5)) console.log(`  ${String(a.pct).padStart(5)} %  ${String(a.ms).padStart(6)} ms  ${a.area}`);
    console.log('\ntop functions (self time):');
    for (const f of s.functions) console.log(`  ${String(f.pct).padStart(5)} %  ${String(f.ms).padStart(6)} ms  ${f.fn}  [${f.area}]`);
  },
});
