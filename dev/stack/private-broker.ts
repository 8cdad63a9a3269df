/**
 * A private Kafka broker for tests and chaos scenarios that kill Kafka: the shared broker
 * (127.0.0.1:9092) serves everyone's tests at once and must never be signalled. This one is a second
 * single-node KRaft broker on free ports of its own, with its own data, logs and pid file in a
 * temporary home, run from the same cached Kafka download as the stack (nothing is fetched twice).
 *
 * It can be SIGKILLed and started again on the same ports and data (a crash, not a wipe), and is
 * removed with everything it wrote by `close()`. The registry, S3 and PostgreSQL stay shared.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { envFromConfig, loadConfig, type Config } from '../../lib/config.ts';
import { freePort, logTail, runningPid, sleep, startDetached } from './processes.ts';
import { kafkaService, stackPaths, type Launch } from './services.ts';
import { StackError } from './toolchain.ts';

export interface PrivateBroker {
  /** Bootstrap servers of this broker (one entry). */
  brokers: string[];
  /** `base` with KAFKA_BROKERS pointing here: what the processes under test are given. */
  config: Config;
  /** The broker's pid while it runs. */
  pid(): number | undefined;
  /** SIGKILL the broker (no clean shutdown) and wait until the process is gone. */
  kill(): Promise<void>;
  /** Start it again on the same ports and data; resolves once it answers a metadata request. */
  restart(): Promise<void>;
  /** Kill it if it runs and delete its home (data, logs, pid file). */
  close(): Promise<void>;
}

/** Brokers still running in this process, SIGKILLed if the process exits without closing them. */
const live = new Set<number>();
process.once('exit', () => {
  for (const pid of live) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

export interface PrivateBrokerOptions {
  /** Appears in the home folder's name (e.g. the test or scenario). */
  name?: string;
  heapMb?: number;
  readyTimeoutMs?: number;
  say?: (line: string) => void;
}

export async function startPrivateBroker(base: Config, opts: PrivateBrokerOptions = {}): Promise<PrivateBroker> {
  const say = opts.say ?? (() => undefined);
  const home = await mkdtemp(path.join(tmpdir(), `ats-relay-broker-${opts.name ?? 'private'}-`));
  const [port, controllerPort] = [await freePort(), await freePort()];
  const config = loadConfig({
    ...envFromConfig(base),
    KAFKA_BROKERS: `127.0.0.1:${port}`,
    STACK_KAFKA_CONTROLLER_PORT: String(controllerPort),
    STACK_KAFKA_HEAP_MB: String(opts.heapMb ?? 384),
  });
  // The shared download cache, everything else under the private home.
  const paths = { ...stackPaths(config), home, data: path.join(home, 'data'), logs: path.join(home, 'logs'), run: path.join(home, 'run') };
  const service = kafkaService(config, paths);
  const managed = service.process!;
  const readyTimeoutMs = opts.readyTimeoutMs ?? 120_000;
  let launch: Launch | undefined;

  async function waitReady(): Promise<void> {
    const t0 = Date.now();
    while (Date.now() - t0 < readyTimeoutMs) {
      if (await service.probe()) return;
      if (runningPid(managed) === undefined) throw new StackError(`private broker ${service.address} exited before it was ready:\n${await logTail(managed)}`);
      await sleep(250);
    }
    throw new StackError(`private broker ${service.address}: not ready after ${readyTimeoutMs / 1000} s:\n${await logTail(managed)}`);
  }

  async function start(): Promise<void> {
    // Formatting (inside install) runs once; a restart reuses the data dir as a crashed broker would.
    launch ??= await service.install!(say);
    const pid = startDetached(managed, launch);
    live.add(pid);
    const t0 = Date.now();
    await waitReady();
    say(`private broker ${service.address} ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (pid ${pid}, home ${home})`);
  }

  async function kill(): Promise<void> {
    const pid = runningPid(managed);
    if (pid === undefined) return;
    process.kill(pid, 'SIGKILL');
    while (alive(pid)) await sleep(25);
    live.delete(pid);
  }

  try {
    await start();
  } catch (err) {
    await kill();
    await rm(home, { recursive: true, force: true });
    throw err;
  }
  return {
    brokers: config.kafka.brokers,
    config: loadConfig({ ...envFromConfig(base), KAFKA_BROKERS: config.kafka.brokers.join(',') }),
    pid: () => runningPid(managed),
    kill,
    async restart() {
      if (runningPid(managed) !== undefined) throw new StackError(`private broker ${service.address} is still running; kill() it first`);
      await start();
    },
    async close() {
      await kill();
      await rm(home, { recursive: true, force: true });
    },
  };
}
