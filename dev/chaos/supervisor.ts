/**
 * The harness as the consumers' supervisor: each role runs as a real `consumers/cli.ts` process in
 * a slot; a process that exits on its own (its Kafka client gave up, a crash) is restarted and
 * counted, one that the harness killed is restarted when the scenario says so.
 */
import { spawnTs, type TsProcess } from '../spawn-entrypoint.ts';
import { freePort } from '../stack/processes.ts';

export interface RoleSpec {
  /** Slot name, e.g. "dispatcher#2" or "retry-a". */
  name: string;
  args: string[];
  /** The consumer group (unique per scenario), used to measure its progress. */
  group: string;
  /** The topic the group reads. */
  topic: string;
}

interface Slot {
  spec: RoleSpec;
  proc: TsProcess;
  port: number;
  /** Set when the harness stopped it on purpose (kill or scale-in): no automatic restart. */
  stopping: boolean;
}

export interface Supervisor {
  start(spec: RoleSpec): Promise<void>;
  /** SIGKILL a slot's process; restart it after `restartAfterMs` (or never, if undefined). */
  kill(name: string, restartAfterMs?: number): Promise<void>;
  /** SIGTERM a slot and remove it (scale in); resolves with its exit code. */
  stop(name: string): Promise<number | string>;
  names(): string[];
  /** Time until a slot's process answers /readyz (ms), from now. */
  slotReady(name: string, timeoutMs: number): Promise<number>;
  waitReady(timeoutMs: number): Promise<void>;
  /** Processes that exited without the harness asking (each was restarted). */
  readonly unexpectedExits: Array<{ name: string; code: number | string; tail: string }>;
  close(): Promise<void>;
}

/** Every consumer process any supervisor started and that still runs (for the CLI's Ctrl-C). */
const running = new Set<TsProcess>();

/** SIGKILL every supervised process still running: the harness is going away without a clean close. */
export function killAllSupervised(): void {
  for (const proc of running) proc.child.kill('SIGKILL');
}

/** The Kafka client id a slot's process runs with (its group members' client ids start with it). */
export function slotClientId(env: Record<string, string>, slot: string): string {
  return `${env.KAFKA_CLIENT_ID ?? 'ats-relay'}.${slot.replace('#', '-')}`;
}

export function createSupervisor(env: Record<string, string>, say: (line: string) => void): Supervisor {
  const slots = new Map<string, Slot>();
  const unexpectedExits: Supervisor['unexpectedExits'] = [];
  let closing = false;

  async function launch(spec: RoleSpec): Promise<void> {
    const port = await freePort();
    // A client id per slot: the group's member list then says which process owns which partitions.
    const proc = spawnTs('consumers/cli.ts', [...spec.args, '--group', spec.group], { ...env, HTTP_PORT: String(port), KAFKA_CLIENT_ID: slotClientId(env, spec.name) });
    running.add(proc);
    void proc.exited.then(() => running.delete(proc));
    const slot: Slot = { spec, proc, port, stopping: false };
    slots.set(spec.name, slot);
    void proc.exited.then((code) => {
      if (closing || slot.stopping || slots.get(spec.name) !== slot) return;
      // Not asked to stop: the supervisor's job is to bring it back.
      unexpectedExits.push({ name: spec.name, code, tail: proc.output().slice(-1500) });
      say(`   ${spec.name} exited on its own (${code}); restarting`);
      void launch(spec);
    });
  }

  async function ready(slot: Slot): Promise<boolean> {
    return fetch(`http://127.0.0.1:${slot.port}/readyz`).then((r) => r.ok, () => false);
  }

  return {
    unexpectedExits,
    start: launch,
    names: () => [...slots.keys()],
    async slotReady(name, timeoutMs) {
      const t0 = Date.now();
      while (Date.now() - t0 < timeoutMs) {
        const slot = slots.get(name);
        if (slot && (await ready(slot))) return Date.now() - t0;
        await new Promise((r) => setTimeout(r, 100));
      }
      return timeoutMs;
    },
    async kill(name, restartAfterMs) {
      const slot = slots.get(name);
      if (!slot) throw new Error(`chaos: no process ${name}`);
      slot.stopping = true;
      slot.proc.child.kill('SIGKILL');
      await slot.proc.exited;
      slots.delete(name);
      if (restartAfterMs !== undefined) {
        await new Promise((r) => setTimeout(r, restartAfterMs));
        if (!closing) await launch(slot.spec);
      }
    },
    async stop(name) {
      const slot = slots.get(name);
      if (!slot) throw new Error(`chaos: no process ${name}`);
      slot.stopping = true;
      slot.proc.child.kill('SIGTERM');
      const code = await slot.proc.exited;
      slots.delete(name);
      return code;
    },
    async waitReady(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const states = await Promise.all([...slots.values()].map(ready));
        if (states.every(Boolean)) return;
        if (Date.now() > deadline) {
          const notReady = [...slots.values()].filter((_, i) => !states[i]);
          throw new Error(`chaos: not ready after ${timeoutMs} ms: ${notReady.map((s) => `${s.spec.name}\n${s.proc.output().slice(-1500)}`).join('\n')}`);
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    },
    async close() {
      closing = true;
      const all = [...slots.values()];
      for (const s of all) s.proc.child.kill('SIGTERM');
      await Promise.all(
        all.map((s) =>
          Promise.race([
            s.proc.exited,
            new Promise((r) => setTimeout(r, 20_000)).then(() => {
              s.proc.child.kill('SIGKILL');
              return s.proc.exited;
            }),
          ]),
        ),
      );
      slots.clear();
    },
  };
}
