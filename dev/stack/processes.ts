/**
 * Background processes owned by the local stack: started detached with their output in a log
 * file, remembered by a pid file, and stopped only if the pid still belongs to the command we
 * started (a recycled pid is never signalled).
 */
import { spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync, existsSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { childEnv } from '../process-env.ts';

export interface ManagedProcess {
  name: string;
  pidFile: string;
  logFile: string;
  /** A string that must appear in /proc/<pid>/cmdline for the pid to be ours. */
  marker: string;
}

export function readPid(p: ManagedProcess): number | undefined {
  if (!existsSync(p.pidFile)) return undefined;
  const pid = Number(readFileSync(p.pidFile, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** The pid of our process if it is alive and is still the command we started. */
export function runningPid(p: ManagedProcess): number | undefined {
  const pid = readPid(p);
  if (pid === undefined) return undefined;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes(p.marker) ? pid : undefined;
  } catch {
    return undefined;
  }
}

export interface StartOptions {
  command: string;
  args: string[];
  env?: Record<string, string>;
  cwd?: string;
}

export function startDetached(p: ManagedProcess, opts: StartOptions): number {
  mkdirSync(path.dirname(p.pidFile), { recursive: true });
  mkdirSync(path.dirname(p.logFile), { recursive: true });
  const fd = openSync(p.logFile, 'a');
  try {
    const child = spawn(opts.command, opts.args, {
      cwd: opts.cwd,
      env: childEnv(opts.env),
      detached: true,
      stdio: ['ignore', fd, fd],
    });
    if (child.pid === undefined) throw new Error(`${p.name}: could not start ${opts.command}`);
    child.unref();
    writeFileSync(p.pidFile, String(child.pid));
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM, wait for a graceful exit, then SIGKILL. Returns whether a process was stopped. */
export async function stopProcess(p: ManagedProcess, graceMs = 20_000): Promise<boolean> {
  const pid = runningPid(p);
  if (pid === undefined) {
    rmSync(p.pidFile, { force: true });
    return false;
  }
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (alive(pid) && Date.now() < deadline) await sleep(200);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
  while (alive(pid)) await sleep(50);
  rmSync(p.pidFile, { force: true });
  return true;
}

export async function logTail(p: ManagedProcess, lines = 15): Promise<string> {
  try {
    const text = await readFile(p.logFile, 'utf8');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Ports handed out by this process: two children started together never get the same one. */
const handedOut = new Set<number>();

/**
 * A TCP port free on 127.0.0.1 right now, for a child process to listen on. Taken below the kernel's
 * ephemeral range (32768–60999 on Linux): a port the OS picked with listen(0) is free only until the
 * child binds it, and in between any outgoing connection (a Kafka client, a pool) may be given the
 * same number — the demo lost a consumer to EADDRINUSE that way.
 */
export async function freePort(): Promise<number> {
  const [low, high] = [20_000, 32_767];
  for (let tries = 0; tries < 200; tries++) {
    const port = low + Math.floor(Math.random() * (high - low + 1));
    if (handedOut.has(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free TCP port found between ${low} and ${high}`);
}
