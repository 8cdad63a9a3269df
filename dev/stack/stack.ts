/**
 * `up` reuses whatever already answers, installs and starts what is missing, and waits for each
 * service to answer a real request; `down` stops only what `up` started (pid files).
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { devKeyringPath, type Config } from '../../lib/config.ts';
import { logTail, runningPid, sleep, startDetached, stopProcess } from './processes.ts';
import { portInUse, stackServices, type Service } from './services.ts';
import { StackError } from './toolchain.ts';

export type Say = (msg: string) => void;

export interface ServiceState {
  name: string;
  address: string;
  state: 'ready' | 'starting' | 'stopped' | 'port taken';
  /** Our pid when we started it; undefined for services we only use (PostgreSQL, reused ones). */
  pid: number | undefined;
}

async function waitReady(svc: Service, timeoutMs: number, say: Say): Promise<void> {
  const started = Date.now();
  let lastNote = started;
  while (Date.now() - started < timeoutMs) {
    if (await svc.probe()) return;
    if (svc.process && runningPid(svc.process) === undefined) {
      throw new StackError(`${svc.name}: the process exited before it became ready. Last log lines (${svc.process.logFile}):\n${await logTail(svc.process)}`);
    }
    if (Date.now() - lastNote > 15_000) {
      say(`${svc.name}: still starting (${Math.round((Date.now() - started) / 1000)} s)…`);
      lastNote = Date.now();
    }
    await sleep(500);
  }
  const tail = svc.process ? `\nLast log lines (${svc.process.logFile}):\n${await logTail(svc.process)}` : '';
  throw new StackError(`${svc.name}: not ready after ${Math.round(timeoutMs / 1000)} s at ${svc.address}.${tail}`);
}

export interface UpResult {
  states: ServiceState[];
  /** Services this call started (the rest were already running and are left alone). */
  started: string[];
}

/**
 * A development keyring for processes run against the local stack without
 * ATS_RELAY_ENCRYPTION_KEYS (lib/config.ts falls back to it). Made once; never used where the
 * variable is set, as it must be in production.
 */
export async function ensureDevKeyring(config: Config, say: Say): Promise<void> {
  const file = devKeyringPath(config.stack.home);
  if (existsSync(file)) return;
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `dev:${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  say(`dev keyring: ${file} (used when ATS_RELAY_ENCRYPTION_KEYS is unset)`);
}

/**
 * Two `up`s at once (two test runs, a demo and a test run) would both install and format the same
 * data directories — Kafka's storage format fails half-way. Starting is serialised by a lock file
 * holding the owner's pid; a lock whose owner is gone is taken over. Waiting for readiness is not
 * under the lock: the second `up` finds the services starting and waits for them.
 */
async function startLock(home: string, say: Say): Promise<() => Promise<void>> {
  const file = path.join(home, 'stack-up.lock');
  await mkdir(home, { recursive: true });
  let noted = false;
  for (;;) {
    try {
      await writeFile(file, String(process.pid), { flag: 'wx' });
      return () => unlink(file).catch(() => undefined);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number(await readFile(file, 'utf8').catch(() => ''));
    if (!Number.isInteger(owner) || owner <= 0 || !alive(owner)) {
      await unlink(file).catch(() => undefined);
      continue;
    }
    if (!noted) say(`stack: another \`up\` (pid ${owner}) is starting services; waiting for it`);
    noted = true;
    await sleep(500);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Bring every service up (or reuse it) and prepare it. Resolves when all answer. */
export async function stackUp(config: Config, say: Say): Promise<UpResult> {
  await ensureDevKeyring(config, say);
  const services = stackServices(config);
  const waits: Array<Promise<void>> = [];
  const started: string[] = [];
  const unlock = await startLock(config.stack.home, say);
  try {
    await startEach();
  } finally {
    await unlock();
  }
  const results = await Promise.allSettled(waits);
  const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => (r.reason as Error).message);
  if (failures.length) throw new StackError(failures.join('\n'));
  return { states: await stackStatus(config), started };

  async function startEach(): Promise<void> {
    for (const svc of services) {
      const t0 = Date.now();
      const finish = async (): Promise<void> => {
        await svc.prepare?.();
      };
      if (await svc.probe()) {
        say(`${svc.name}: already running at ${svc.address}`);
        waits.push(finish());
        continue;
      }
      if (!svc.process || !svc.install) {
        throw new StackError(
          svc.name === 'postgres'
            ? `postgres: not reachable at ${svc.address}. Start PostgreSQL (e.g. pg_ctlcluster 15 main start) or point DATABASE_URL at one.`
            : `${svc.name}: not reachable at ${svc.address}.`,
        );
      }
      if (runningPid(svc.process) === undefined) {
        for (const port of svc.ports) {
          if (await portInUse(port)) {
            throw new StackError(`${svc.name}: port ${port} is already taken by another process that does not answer as ${svc.name}. Stop it, or choose other ports (see the README's configuration table).`);
          }
        }
        const launch = await svc.install(say);
        startDetached(svc.process, launch);
        started.push(svc.name);
        say(`${svc.name}: starting (log: ${svc.process.logFile})`);
      } else {
        say(`${svc.name}: already starting, waiting for it`);
      }
      waits.push(
        waitReady(svc, config.stack.readyTimeoutMs, say).then(async () => {
          await finish();
          say(`${svc.name}: ready at ${svc.address} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
        }),
      );
    }
  }
}

export async function stackStatus(config: Config): Promise<ServiceState[]> {
  return Promise.all(
    stackServices(config).map(async (svc): Promise<ServiceState> => {
      const pid = svc.process ? runningPid(svc.process) : undefined;
      const ready = await svc.probe();
      let state: ServiceState['state'] = ready ? 'ready' : pid ? 'starting' : 'stopped';
      if (state === 'stopped') {
        for (const port of svc.ports) if (await portInUse(port)) state = 'port taken';
      }
      return { name: svc.name, address: svc.address, state, pid };
    }),
  );
}

/** Stop the processes `up` started (all of them, or only those named). Returns the names stopped. */
export async function stackDown(config: Config, say: Say, only?: string[]): Promise<string[]> {
  const stopped: string[] = [];
  const services = stackServices(config).filter((s) => !only || only.includes(s.name));
  await Promise.all(
    services.map(async (svc) => {
      if (!svc.process) return;
      if (await stopProcess(svc.process)) {
        say(`${svc.name}: stopped`);
        stopped.push(svc.name);
      }
    }),
  );
  return stopped;
}

export async function stackLogs(config: Config, name: string | undefined, lines: number): Promise<string> {
  const services = stackServices(config).filter((s) => s.process && (!name || s.name === name));
  if (name && services.length === 0) throw new StackError(`unknown service "${name}" (one of: kafka, registry, s3, smtp)`);
  const parts = await Promise.all(services.map(async (s) => `== ${s.name} (${s.process!.logFile})\n${await logTail(s.process!, lines)}`));
  return parts.join('\n\n');
}

export function formatTable(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

export function statusTable(states: ServiceState[]): string {
  return formatTable([['SERVICE', 'ADDRESS', 'STATE', 'PID'], ...states.map((s) => [s.name, s.address, s.state, s.pid ? String(s.pid) : '-'])]);
}
