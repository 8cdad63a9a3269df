/**
 * Run one of the project's entrypoints as a real child process (as an operator would): the demo
 * and the benchmarks start the pipeline this way, and tests that kill, restart or signal a process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { childEnv } from './process-env.ts';

export interface TsProcess {
  child: ChildProcess;
  output(): string;
  /** Resolves with the exit code (or the signal name). */
  exited: Promise<number | string>;
}

export function spawnTs(script: string, args: string[], env: Record<string, string>): TsProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return { child, output: () => out, exited };
}
