/**
 * `node dist/profile-summary.js FILE.cpuprofile [N]`: where a process's CPU went, from a
 * `--cpu-prof` profile (`pnpm bench --profile` writes one per process): self time by function
 * and by package, the top N of each.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** The package (or node internal area) a script URL belongs to. */
export function packageOf(url: string): string {
  if (!url) return '(native/gc/idle)';
  if (url.startsWith('node:')) return url.replace(/^node:(internal\/)?/, 'node:').split('/')[0]!;
  const pnpm = /node_modules\/\.pnpm\/[^/]+\/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pnpm) return pnpm[1]!;
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (modules) return modules[1]!;
  const pkg = /\/(packages|bench)\/([^/]+)?/.exec(url);
  if (pkg) return pkg[1] === 'bench' ? 'bench' : `@lightbus/${pkg[2]}`;
  return url;
}

/** Self time (ms) by function and by package. */
export function summarize(profile: Profile): { total: number; byFunction: [string, number][]; byPackage: [string, number][] } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000));
  const byFunction = new Map<string, number>();
  const byPackage = new Map<string, number>();
  let total = 0;
  for (const [id, ms] of self) {
    const node = byId.get(id)!;
    const name = node.callFrame.functionName || '(anonymous)';
    const where = node.callFrame.url ? `${packageOf(node.callFrame.url)} ${node.callFrame.url.split('/').pop()}:${node.callFrame.lineNumber + 1}` : '';
    if (name !== '(idle)') total += ms;
    byFunction.set(`${name} ${where}`.trim(), (byFunction.get(`${name} ${where}`.trim()) ?? 0) + ms);
    const pkg = name === '(idle)' ? '(idle)' : name === '(garbage collector)' ? '(gc)' : packageOf(node.callFrame.url);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + ms);
  }
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]);
  return { total, byFunction: sorted(byFunction), byPackage: sorted(byPackage) };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file) {
    console.error('Usage: node dist/profile-summary.js FILE.cpuprofile [N]');
    process.exit(2);
  }
  const top = Number(process.argv[3] ?? 25);
  const { total, byFunction, byPackage } = summarize(JSON.parse(readFileSync(file, 'utf8')) as Profile);
  console.log(`busy ${total.toFixed(0)} ms (idle excluded)\n\nby package (self ms):`);
  for (const [name, ms] of byPackage.slice(0, top)) console.log(`  ${ms.toFixed(1).padStart(9)}  ${name}`);
  console.log('\nby function (self ms):');
  for (const [name, ms] of byFunction.slice(0, top)) console.log(`  ${ms.toFixed(1).padStart(9)}  ${name}`);
}
