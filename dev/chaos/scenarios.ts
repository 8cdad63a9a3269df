/**
 * The chaos scenarios. Each gets a fresh world (topics, groups, processes, load) and does its damage
 * while the load runs; the runner then settles and audits. A scenario returns notes for the report
 * and, where it measured one, its own recovery time.
 */
import { envFromConfig } from '../../lib/config.ts';
import { describeGroup, withAdmin, type Admin } from '../../lib/kafka/index.ts';
import { MALFORMED_KINDS, malformedRecord, type MalformedKind } from './malformed.ts';
import { sha256, type Monitor } from './audit.ts';
import type { PrivateBroker } from '../stack/private-broker.ts';
import { slotClientId } from './supervisor.ts';
import type { TcpProxy } from './tcp-proxy.ts';
import type { World } from './world.ts';
import { sleep } from '../../lib/sleep.ts';

export type ProxiedService = 's3' | 'smtp' | 'registry';

export interface Profile {
  name: 'full' | 'short';
  /** Applications published per second during a scenario. */
  rate: number;
  kills: number;
  /** Who is killed, in order (random consumer processes when the list runs out). */
  victims: string[];
  malformed: number;
  oversized: number;
  /** How long the hung ATS hangs. */
  hangMs: number;
  scaleHoldMs: number;
  /** How long S3 and SMTP are down. */
  outageMs: number;
  /** How long the registry is down. */
  registryOutageMs: number;
  /** How long PostgreSQL connections keep being terminated. */
  pgChaosMs: number;
  /** Hand-overs measured (one of two dispatchers SIGKILLed, the other takes its partitions). */
  handovers: number;
  /** Times the (private) broker is SIGKILLed, and how long it stays down each time. */
  brokerKills: number;
  brokerDownMs: number;
}

export const PROFILES: Record<Profile['name'], Profile> = {
  full: { name: 'full', rate: 30, kills: 8, victims: ['dispatcher#1'], malformed: 10_000, oversized: 5, hangMs: 20_000, scaleHoldMs: 15_000, outageMs: 15_000, registryOutageMs: 30_000, pgChaosMs: 20_000, handovers: 3, brokerKills: 2, brokerDownMs: 20_000 },
  short: { name: 'short', rate: 15, kills: 2, victims: ['dispatcher#1', 'retry-a'], malformed: 500, oversized: 1, hangMs: 8_000, scaleHoldMs: 6_000, outageMs: 6_000, registryOutageMs: 10_000, pgChaosMs: 8_000, handovers: 1, brokerKills: 1, brokerDownMs: 8_000 },
};

export interface ScenarioContext {
  world: World;
  profile: Profile;
  monitor: Monitor;
  /** Malformed records published: hash of the value → kind. */
  malformed: Map<string, string>;
  /** TCP proxies in front of the shared services this scenario takes down (see Scenario.proxies). */
  proxies: Map<ProxiedService, TcpProxy>;
  /** The world's own broker, when the scenario asked for one (Scenario.privateBroker). */
  broker?: PrivateBroker;
  say(line: string): void;
}

export interface ScenarioOutcome {
  notes: string[];
  /** Recovery measured by the scenario itself (else the monitor's longest stall is reported). */
  recoveryMs?: number;
  /** Slowest hand-over measured: a member SIGKILLed → a surviving member commits on its partitions. */
  handoverMs?: number;
}

export interface Scenario {
  name: string;
  summary: string;
  /** Services the world's processes reach through a toggleable proxy. */
  proxies?: ProxiedService[];
  /** The world runs on a private Kafka broker of its own, which the scenario may kill (never the shared one). */
  privateBroker?: boolean;
  run(ctx: ScenarioContext): Promise<ScenarioOutcome>;
}


async function deliveredFor(world: World, integrationIds: string[]): Promise<number> {
  const { rows } = await world.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM deliveries WHERE integration_id = ANY($1) AND status = 'delivered'", [integrationIds]);
  return rows[0]!.n;
}


/** Partitions of `topic` owned by the group members whose client id belongs to `slot`'s process. */
function ownedBy(members: Awaited<ReturnType<typeof describeGroup>>['members'], clientIdPrefix: string, topic: string): number[] {
  return members.filter((m) => m.clientId.startsWith(`${clientIdPrefix}-`)).flatMap((m) => m.assignment[topic] ?? []);
}

async function committedOffsets(admin: Admin, group: string, topic: string): Promise<Map<number, number>> {
  const [committed] = await admin.fetchOffsets(group, [topic]);
  return new Map((committed?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
}

interface Handover {
  partitions: number[];
  /** Kill → the group's assignment gives the dead member's partitions to a survivor. */
  assignedMs: number;
  /** Kill → an application published after the kill was delivered from every one of those partitions. */
  consumedMs: number;
  /** Kill → every one of those partitions has a commit past where it stood at the kill. */
  committedMs: number;
}

/**
 * Kill → the first delivery (deliveries.delivered_at) of an application published to `partition`
 * after the kill: only the dispatcher group reads those records first, and the victim is dead.
 */
async function firstDeliveryAfter(world: World, partition: number, killedAt: number): Promise<number | undefined> {
  const ids = [...world.placed].filter(([, p]) => p.partition === partition && p.at >= killedAt + 250).map(([id]) => id);
  if (ids.length === 0) return undefined;
  const { rows } = await world.pool.query<{ at: Date | null }>(
    "SELECT min(delivered_at) AS at FROM deliveries WHERE application_id = ANY($1) AND status = 'delivered' AND integration_id = ANY($2)",
    [ids, world.customers.map((c) => c.integration.id)],
  );
  const at = rows[0]?.at;
  return at ? at.getTime() - killedAt : undefined;
}

/**
 * SIGKILL `victim` (not restarted) while `survivor` runs in the same group, and time the hand-over:
 * only the group's failure detection and rebalance, no process start-up in it.
 */
async function measureHandover(world: World, victim: string, survivor: string, timeoutMs: number): Promise<Handover> {
  const spec = world.roles.get(victim)!;
  const env = envFromConfig(world.config);
  const [victimId, survivorId] = [slotClientId(env, victim), slotClientId(env, survivor)];
  return withAdmin(world.kafka, async (admin) => {
    const before = await describeGroup(admin, spec.group);
    const partitions = ownedBy(before.members, victimId, spec.topic);
    if (before.state !== 'Stable' || partitions.length === 0) throw new Error(`chaos: ${victim} owns no partition of a stable group (${before.state})`);
    const atKill = await committedOffsets(admin, spec.group, spec.topic);
    const t0 = Date.now();
    await world.supervisor.kill(victim);
    let assignedMs: number | undefined;
    let committedMs: number | undefined;
    const firstDelivery = new Map<number, number>();
    while (Date.now() - t0 < timeoutMs) {
      if (assignedMs === undefined) {
        const now = await describeGroup(admin, spec.group).catch(() => undefined);
        const taken = now ? new Set(ownedBy(now.members, survivorId, spec.topic)) : new Set<number>();
        if (now?.state === 'Stable' && partitions.every((p) => taken.has(p))) assignedMs = Date.now() - t0;
      }
      const committed = await committedOffsets(admin, spec.group, spec.topic).catch(() => undefined);
      // A partition the load left without a new record has nothing to commit; its owner counts.
      const offsets = await admin.fetchTopicOffsets(spec.topic).catch(() => undefined);
      if (!offsets) {
        await sleep(100);
        continue;
      }
      const highs = new Map(offsets.map((o) => [o.partition, Number(o.high)]));
      const moved = partitions.every((p) => (committed?.get(p) ?? -1) > (atKill.get(p) ?? -1) || (highs.get(p) ?? 0) <= (atKill.get(p) ?? -1));
      if (moved) committedMs ??= Date.now() - t0;
      for (const p of partitions) {
        if (firstDelivery.has(p)) continue;
        const ms = await firstDeliveryAfter(world, p, t0);
        if (ms !== undefined) firstDelivery.set(p, ms);
      }
      if (assignedMs !== undefined && committedMs !== undefined && firstDelivery.size === partitions.length) {
        return { partitions, assignedMs, consumedMs: Math.max(...firstDelivery.values()), committedMs };
      }
      await sleep(100);
    }
    const state = `assigned ${assignedMs === undefined ? 'no' : `after ${assignedMs} ms`}, committed ${committedMs === undefined ? 'no' : `after ${committedMs} ms`}, delivered from ${[...firstDelivery.keys()].join(',') || 'none'}`;
    throw new Error(`chaos: ${survivor} did not take over ${victim}'s partitions ${partitions.join(',')} within ${timeoutMs / 1000} s (${state})`);
  });
}

async function waitGroupStable(world: World, slots: string[], timeoutMs: number): Promise<void> {
  const spec = world.roles.get(slots[0]!)!;
  const env = envFromConfig(world.config);
  const t0 = Date.now();
  await withAdmin(world.kafka, async (admin) => {
    while (Date.now() - t0 < timeoutMs) {
      const g = await describeGroup(admin, spec.group).catch(() => undefined);
      if (g?.state === 'Stable' && slots.every((s) => ownedBy(g.members, slotClientId(env, s), spec.topic).length > 0)) return;
      await sleep(250);
    }
    throw new Error(`chaos: group ${spec.group} not stable with ${slots.join(', ')} after ${timeoutMs / 1000} s`);
  });
}

export const SCENARIOS: Scenario[] = [
  {
    name: 'sigkill',
    summary: 'SIGKILL a random consumer process (the dispatcher first), restart it at once, repeatedly; recovery = kill → its group commits again',
    async run({ world, profile, monitor, say }) {
      const load = world.load(profile.rate);
      const recoveries: string[] = [];
      let worst = 0;
      try {
        await sleep(3_000);
        for (let i = 0; i < profile.kills; i++) {
          const names = world.supervisor.names();
          const victim = profile.victims[i] ?? names[Math.floor(Math.random() * names.length)]!;
          const t0 = Date.now();
          await world.supervisor.kill(victim, 0);
          // Two clocks from the kill: the restarted process answers /readyz, the group commits again.
          const since = (p: Promise<unknown>): Promise<number | undefined> => p.then((v) => (v === undefined ? undefined : Date.now() - t0));
          const [readyMs, ms] = await Promise.all([since(world.supervisor.slotReady(victim, 60_000)), since(monitor.progressAfter(victim, 45_000))]);
          if (ms !== undefined) worst = Math.max(worst, ms);
          const readyText = `ready ${((readyMs ?? 0) / 1000).toFixed(1)} s`;
          recoveries.push(`${victim} ${ms === undefined ? 'no lag' : `${(ms / 1000).toFixed(1)} s`} (${readyText})`);
          say(`   killed ${victim} (SIGKILL), restarted (${readyText}); ${ms === undefined ? 'its group had no lag' : `its group committed again after ${(ms / 1000).toFixed(1)} s`}`);
          await sleep(1_500);
        }
      } finally {
        await load.stop();
      }
      return { notes: [`recoveries: ${recoveries.join(', ')}`], recoveryMs: worst };
    },
  },
  {
    name: 'handover',
    summary: 'two dispatchers; SIGKILL one (not restarted): time until the survivor delivers from its partitions (hand-over alone, no process start-up)',
    async run({ world, profile, say }) {
      const load = world.load(profile.rate);
      const handovers: string[] = [];
      let worst = 0;
      try {
        const second = world.dispatcherSpec(2);
        world.roles.set(second.name, second);
        await world.supervisor.start(second);
        await world.supervisor.waitReady(120_000);
        for (let i = 0; i < profile.handovers; i++) {
          // Alternate the victim: each member dies in turn, the other takes over.
          const [victim, survivor] = i % 2 === 0 ? ['dispatcher#2', 'dispatcher#1'] : ['dispatcher#1', 'dispatcher#2'];
          await waitGroupStable(world, [victim, survivor], 120_000);
          await sleep(2_000);
          const h = await measureHandover(world, victim, survivor, 120_000);
          worst = Math.max(worst, h.consumedMs);
          const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
          handovers.push(`${victim} → ${survivor} (partitions ${h.partitions.join(',')}): assigned ${s(h.assignedMs)}, delivering ${s(h.consumedMs)}, committed ${s(h.committedMs)}`);
          say(`   killed ${victim} (SIGKILL, not restarted): ${survivor} got partitions ${h.partitions.join(',')} after ${s(h.assignedMs)}, delivered from each after ${s(h.consumedMs)}, committed on each after ${s(h.committedMs)}`);
          // Back to two members for the next round (or for the audit's steady state).
          await world.supervisor.start(world.roles.get(victim)!);
          await world.supervisor.waitReady(120_000);
        }
        await waitGroupStable(world, ['dispatcher#1', 'dispatcher#2'], 120_000);
        await sleep(2_000);
      } finally {
        await load.stop();
      }
      return { notes: [`hand-overs (target ≤ 10 s, session ${world.config.kafka.sessionTimeoutMs / 1000} s): ${handovers.join('; ')}`], handoverMs: worst };
    },
  },
  {
    name: 'broker',
    summary: "the Kafka broker SIGKILLed mid-stream and restarted (a private broker of the world's own); recovery = broker back → the dispatcher commits again",
    privateBroker: true,
    async run({ world, profile, monitor, broker, say }) {
      if (!broker) throw new Error('chaos: the broker scenario needs its private broker');
      const load = world.load(profile.rate);
      const notes: string[] = [];
      let worst = 0;
      try {
        await sleep(3_000);
        for (let i = 0; i < profile.brokerKills; i++) {
          await broker.kill();
          say(`   broker SIGKILLed (down for ${profile.brokerDownMs / 1000} s)`);
          await sleep(profile.brokerDownMs);
          const t0 = Date.now();
          await broker.restart();
          const startMs = Date.now() - t0;
          const moved = await monitor.progressAfter('dispatcher#1', 120_000);
          const ms = Date.now() - t0;
          worst = Math.max(worst, ms);
          const line = `broker restarted (answering after ${(startMs / 1000).toFixed(1)} s); the dispatcher committed again ${moved === undefined ? '(no lag)' : `${(ms / 1000).toFixed(1)} s after the restart began`}`;
          notes.push(line);
          say(`   ${line}`);
          await sleep(3_000);
        }
      } finally {
        await load.stop();
      }
      return { notes, recoveryMs: worst };
    },
  },
  {
    name: 'scale',
    summary: 'one dispatcher → three → one under load (the extra two stopped with SIGTERM, as ops would)',
    async run({ world, profile, say }) {
      const load = world.load(profile.rate);
      try {
        await sleep(3_000);
        for (const n of [2, 3]) {
          const spec = world.dispatcherSpec(n);
          world.roles.set(spec.name, spec);
          await world.supervisor.start(spec);
        }
        await world.supervisor.waitReady(90_000);
        say('   scaled out: three dispatchers');
        await sleep(profile.scaleHoldMs);
        const codes = await Promise.all([world.supervisor.stop('dispatcher#2'), world.supervisor.stop('dispatcher#3')]);
        world.roles.delete('dispatcher#2');
        world.roles.delete('dispatcher#3');
        say(`   scaled in: one dispatcher (the others exited ${codes.join(', ')})`);
        await sleep(profile.scaleHoldMs / 2);
        return { notes: codes.every((c) => c === 0) ? [] : [`a stopped dispatcher exited ${codes.join(', ')}`] };
      } finally {
        await load.stop();
      }
    },
  },
  {
    name: 'malformed',
    summary: 'malformed records mixed into the main topic: random bytes, wrong magic byte, unknown schema id, truncated Avro, valid Avro with invalid fields, null key, oversized',
    async run({ world, profile, malformed, say }) {
      const load = world.load(profile.rate);
      try {
        await sleep(2_000);
        const batch = 250;
        for (let sent = 0; sent < profile.malformed; sent += batch) {
          const kinds: MalformedKind[] = Array.from({ length: Math.min(batch, profile.malformed - sent) }, (_, i) => MALFORMED_KINDS[(sent + i) % MALFORMED_KINDS.length]!);
          const messages = await Promise.all(kinds.map((k) => malformedRecord(world, k)));
          await world.send(messages);
          messages.forEach((m, i) => malformed.set(sha256(m.value as Buffer), kinds[i]!));
          if ((sent / batch) % 8 === 0) say(`   ${sent + messages.length}/${profile.malformed} malformed records sent`);
        }
        for (let i = 0; i < profile.oversized; i++) {
          const m = await malformedRecord(world, 'oversized');
          await world.send([m]);
          malformed.set(sha256(m.value as Buffer), 'oversized');
        }
        await sleep(3_000);
      } finally {
        await load.stop();
      }
      return { notes: [`${malformed.size} malformed (${MALFORMED_KINDS.length} kinds + ${profile.oversized} oversized of 900 KB)`] };
    },
  },
  {
    name: 'hung-ats',
    summary: "one customer's ATS hangs (never answers) for a while: the others keep their throughput",
    async run({ world, profile, say }) {
      const load = world.load(profile.rate);
      const [hung, ...others] = world.customers;
      const healthy = others.filter((c) => c.name !== 'initech').map((c) => c.integration.id);
      try {
        await sleep(3_000);
        const d0 = await deliveredFor(world, healthy);
        const t0 = Date.now();
        await sleep(profile.hangMs);
        const before = ((await deliveredFor(world, healthy)) - d0) / ((Date.now() - t0) / 1000);
        const fault = world.sandbox.addFault({ kind: 'hang', platform: 'greenhouse', tenant: hung!.tenant, hangMs: 60_000 });
        say(`   ${hung!.name}'s ATS hangs now`);
        const d1 = await deliveredFor(world, healthy);
        const t1 = Date.now();
        await sleep(profile.hangMs);
        const during = ((await deliveredFor(world, healthy)) - d1) / ((Date.now() - t1) / 1000);
        world.sandbox.clearFaults(fault.id);
        say(`   ${hung!.name}'s ATS answers again`);
        return { notes: [`throughput of the healthy others: ${before.toFixed(1)}/s before, ${during.toFixed(1)}/s while ${hung!.name} hung`] };
      } finally {
        await load.stop();
      }
    },
  },
  {
    name: 'outages',
    summary: 'S3 down then back, SMTP down then back, the registry down (with a dispatcher SIGKILLed and restarted meanwhile), each behind a TCP proxy',
    proxies: ['s3', 'smtp', 'registry'],
    async run({ world, profile, monitor, proxies, say }) {
      const load = world.load(profile.rate);
      const notes: string[] = [];
      try {
        await sleep(3_000);
        for (const service of ['s3', 'smtp'] as const) {
          await proxies.get(service)!.down();
          say(`   ${service} down`);
          await sleep(profile.outageMs);
          await proxies.get(service)!.up();
          say(`   ${service} back`);
          await sleep(2_000);
        }
        // The registry: a restarted decode-only process must wait for it, not crash or dead-letter.
        await proxies.get('registry')!.down();
        say('   registry down; SIGKILL and restart dispatcher#1 meanwhile');
        const t0 = Date.now();
        await world.supervisor.kill('dispatcher#1', 0);
        await sleep(profile.registryOutageMs);
        await proxies.get('registry')!.up();
        say('   registry back');
        const moved = await monitor.progressAfter('dispatcher#1', 60_000);
        notes.push(`registry down ${profile.registryOutageMs / 1000} s; the restarted dispatcher committed again ${moved === undefined ? '(no lag)' : `${((Date.now() - t0 - profile.registryOutageMs) / 1000).toFixed(1)} s after it came back`}`);
        await sleep(2_000);
      } finally {
        await load.stop();
      }
      return { notes };
    },
  },
  {
    name: 'pg-kill',
    summary: "the chaos processes' PostgreSQL connections terminated (pg_terminate_backend) every second, mid-batch",
    async run({ world, profile, say }) {
      const load = world.load(profile.rate);
      let terminated = 0;
      try {
        await sleep(3_000);
        const until = Date.now() + profile.pgChaosMs;
        while (Date.now() < until) {
          // Only this database's backends, never the harness's own: other engineers' databases are not ours.
          const { rows } = await world.pool.query<{ n: number }>(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name <> 'chaos-harness'",
          );
          terminated += rows[0]!.n;
          await sleep(1_000);
        }
        say(`   ${terminated} backends terminated`);
        await sleep(2_000);
      } finally {
        await load.stop();
      }
      return { notes: [`${terminated} PostgreSQL backends terminated over ${profile.pgChaosMs / 1000} s`] };
    },
  },
];
