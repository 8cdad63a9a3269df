/**
 * Run one of the project's entrypoints as a real child process (as an operator would): the demo
 * and the benchmarks start the pipeline this way, and tests that kill, restart or signal a process.
 * Development tooling only (not in the production build): sources run through tsx, or with
 * `built` the JavaScript `npm run build` emitted for them, with plain node as production runs it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { childEnv } from './process-env.ts';

export interface TsProcess {
  child: ChildProcess;
  output(): string;
  /** Resolves with the exit code (or the signal name). */
  exited: Promise<number | string>;
}

/** `consumers/cli.ts` → `dist/consumers/cli.js` (dev/build.ts keeps the sources' layout). */
export function builtPath(script: string): string {
  return `dist/${script.replace(/\.ts$/, '.js')}`;
}

/** `nodeArgs` go to node itself, before the script (e.g. --cpu-prof, which NODE_OPTIONS does not take). */
export function spawnTs(script: string, args: string[], env: Record<string, string>, opts: { built?: boolean; nodeArgs?: string[] } = {}): TsProcess {
  const argv = [...(opts.nodeArgs ?? []), ...(opts.built ? [builtPath(script), ...args] : ['--import', 'tsx', script, ...args])];
  const child = spawn(process.execPath, argv, { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return { child, output: () => out, exited };
}
