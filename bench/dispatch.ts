/**
 * Dispatcher throughput and CPU, measured beside its baselines in paired rounds (each round: raw,
 * dispatcher and naive at 0 ms, then at 50 ms; figures are medians over the rounds, ratios the
 * medians of the rounds' own ratios, so a shared machine's drift hits both sides of a ratio alike):
 *   - the dispatcher (a separate process, as deployed) at 0 ms and 50 ms added ATS latency, with its
 *     own CPU per delivery (process.cpuUsage via its /metrics, over the measured window). Each
 *     process first delivers a warm-up batch, outside the window, as the raw client is warmed up
 *     before it is measured: a just-started process compiles its hot code and opens its connections
 *     (reported apart, as the warm-up's CPU per delivery);
 *   - a naive consumer: kafkajs eachMessage, one message at a time per partition, same handler and
 *     sandbox;
 *   - the sandbox's raw capacity: undici sending the same requests a delivery makes, no Kafka, and
 *     that client's CPU per delivery (this process's process.cpuUsage while it alone sends);
 *   - the connectors alone: createConnectors().deliver() as the dispatcher calls it, in this process
 *     at the raw client's concurrency, no Kafka and no PostgreSQL. It splits the dispatcher's CPU per
 *     delivery into the HTTP work with the vendor logic (this figure) and the pipeline around it
 *     (consuming, the delivery log, the lease, commits: the dispatcher's figure minus this one).
 * Then, once: steady load (a fixed publish rate; publish → ATS receipt latency) and scale-out (1 vs 2
 * dispatcher processes in one group on the same backlog).
 * N applications are published to fresh 12-partition topics while the dispatcher runs; end-to-end
 * latency is publish → delivered (including the queueing of the backlog). Peak RSS is the
 * dispatcher process's high-water mark; the dispatcher runs as production runs it, the built
 * JavaScript (`npm run build`) under plain node with its Deployment's NODE_OPTIONS (the heap ceiling:
 * dev/node-options.ts), unless `source` asks for the sources through tsx.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import pg from 'pg';
import { Pool as UndiciPool } from 'undici';
import type { ApplicationSubmitted, DocumentRef } from '../lib/application.ts';
import { envFromConfig, loadConfig, type Config } from '../lib/config.ts';
import { Keyring } from '../registry/keyring.ts';
import { deployedNodeOptions } from '../dev/node-options.ts';
import { createPool } from '../lib/db.ts';
import { readHeaders } from '../lib/headers.ts';
import { createIntegrationRepository, type IntegrationRepository } from '../registry/repository.ts';
// The naive baseline is kafkajs as its users write it (eachMessage, its defaults), not ats-relay's port.
// eslint-disable-next-line no-restricted-imports
import { Kafka, logLevel } from 'kafkajs';
import { ACKS_ALL, createKafka, createProducer, describeGroup, withAdmin, type KafkaClient, type Producer } from '../lib/kafka/index.ts';
import { createLogger } from '../lib/logger.ts';
import { createEventCodec, type EventCodec } from '../lib/serde.ts';
import { ensureTopics, topicSpecs } from '../lib/topics.ts';
import { migrate } from '../db/migrate.ts';
import { createDeliveryServices } from '../consumers/dispatcher/index.ts';
import { createConnectors } from '../connectors/index.ts';
import type { Integration } from '../registry/integration.ts';
import { createConsumerMetrics } from '../consumers/dispatcher/metrics.ts';
import { sandboxClient, waitForSandbox, type SandboxClient } from '../sandbox/client.ts';
import { spawnTs } from '../dev/spawn-entrypoint.ts';
import { freePort } from '../dev/stack/processes.ts';

export interface DispatchBenchOptions {
  count: number;
  /** Applications each dispatcher run delivers before its measured window (see runDispatcher). */
  warmup: number;
  partitions: number;
  maxInFlight: number;
  /** How long each naive run may take (its rate is what it delivered per second). */
  naiveSeconds: number;
  rawSeconds: number;
  /** Paired rounds (raw, dispatcher, naive at 0 and 50 ms each); every figure is the median over them. */
  rounds: number;
  /** Run the dispatcher from dist/ with plain node (as deployed; the caller builds first) or from the sources through tsx. */
  dispatcher: 'built' | 'source';
  /** Steady-load phase: these rates (applications/s), each at 0 and 50 ms ATS latency, for `steadySeconds`; empty skips it. */
  steadyRates: number[];
  steadySeconds: number;
  /** Scale-out phase: 1 vs 2 dispatcher processes in one group on a backlog of this many applications (0 skips it). */
  scaleOutCount: number;
  /** Write a V8 CPU profile of each 0 ms dispatcher run into this folder (node --cpu-prof). */
  cpuProfileDir?: string | undefined;
  /** NODE_OPTIONS for the dispatcher instead of its Deployment's (deploy/k8s/base/dispatcher.yaml); for experiments. */
  dispatcherNodeOptions?: string[] | undefined;
  say: (line: string) => void;
}

/** One fixed-rate run: latency from the publish call to the ATS's receipt (the sandbox's created_at). */
export interface SteadyResult {
  ratePerSec: number;
  atsLatencyMs: number;
  seconds: number;
  published: number;
  /** What the producer actually achieved (below ratePerSec means the publisher, not the dispatcher, fell behind). */
  achievedPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** The dispatcher's CPU per delivery at this rate, µs (the measured window). */
  cpuUsPerDelivery: number;
  /** Published at the same rate before the window, to a process just started: reported, not in the figures above. */
  warmup: { seconds: number; published: number; p99Ms: number; maxMs: number };
}

/** Seconds of the steady rate published before its measured window (see runSteady). */
const STEADY_WARMUP_SECONDS = 5;

export interface DispatchBenchResult {
  count: number;
  partitions: number;
  maxInFlight: number;
  rounds: number;
  /** Which dispatcher was measured (and whose peak RSS peakRssMb is). */
  dispatcher: 'built' | 'source';
  /** The Node flags it ran with: its Kubernetes Deployment's NODE_OPTIONS. */
  dispatcherNodeOptions: string;
  /** The Node version of every process measured (the bench's own, which starts the rest). */
  node: string;
  /** 1-minute load average when the bench started and ended (the machine is shared). */
  loadAvg: [number, number];
  /** Medians over the rounds. */
  deliveriesPerSec0ms: number;
  deliveriesPerSec50ms: number;
  /** The dispatcher process's own CPU (process.cpuUsage: user + system) over the measured window ÷ deliveries. */
  cpuUsPerDelivery0ms: number;
  cpuUsPerDelivery50ms: number;
  /** Applications delivered by each dispatcher before its window (0: measured from a cold start). */
  warmup: number;
  /** CPU per delivery of those first deliveries at 0 ms: a just-started process's cost (JIT, connections). */
  coldCpuUsPerDelivery0ms: number | undefined;
  /** Transactions the database committed per delivery at 0 ms (pg_stat_database; the bench's own polls left out). */
  statementsPerDelivery0ms: number;
  /** The bench process's CPU while undici alone sent the same three requests per delivery ÷ deliveries. */
  rawCpuUsPerDelivery: number;
  /** Median of the rounds' own dispatcher ÷ raw CPU per delivery (target ≤ 2). */
  cpuRatioVsRaw0ms: number;
  /** This process's CPU while the connectors alone delivered (no Kafka, no PostgreSQL) ÷ deliveries. */
  connectorCpuUsPerDelivery: number;
  /** Median of the rounds' own connectors-alone ÷ raw CPU per delivery. */
  connectorCpuRatioVsRaw: number;
  /** Median of the rounds' own dispatcher (0 ms) minus connectors-alone CPU per delivery: the pipeline's share. */
  pipelineCpuUsPerDelivery0ms: number;
  /** kafkajs eachMessage with its defaults: one message at a time. */
  naivePerSec0ms: number;
  naivePerSec50ms: number;
  /** eachMessage with partitionsConsumedConcurrently = partitions: one message at a time per partition. */
  naivePerPartitionPerSec0ms: number;
  naivePerPartitionPerSec50ms: number;
  /** Median of the raw runs (one per round, see rawSandboxSamples). */
  rawSandboxPerSec0ms: number;
  rawSandboxSamples: number[];
  /** Ratios: medians of the rounds' own ratios (paired: both sides measured in the same round). */
  ratioVsNaive0ms: number;
  ratioVsNaive50ms: number;
  ratioVsNaivePerPartition0ms: number;
  ratioVsNaivePerPartition50ms: number;
  ratioVsRaw0ms: number;
  /** Every round's figures, in order. */
  samples: {
    deliveriesPerSec0ms: number[];
    deliveriesPerSec50ms: number[];
    cpuUsPerDelivery0ms: number[];
    cpuUsPerDelivery50ms: number[];
    statementsPerDelivery0ms: number[];
    rawCpuUsPerDelivery: number[];
    connectorCpuUsPerDelivery: number[];
    ratioVsRaw0ms: number[];
    cpuRatioVsRaw0ms: number[];
  };
  /** Backlog drain latency (publish → delivered, queueing included) of the median round. */
  p50Ms0ms: number;
  p99Ms0ms: number;
  p50Ms50ms: number;
  p99Ms50ms: number;
  p50Ms: number;
  p99Ms: number;
  peakRssMb: number;
  /** Steady load, publish → ATS receipt. */
  steady: SteadyResult[];
  /** 1 vs 2 dispatcher processes in one group draining the same backlog (undefined when skipped). */
  scaleOut?: { count: number; perSec1: number; perSec2: number; ratio: number; cpuUsPerDelivery1: number; cpuUsPerDelivery2: number };
}

const USER = '4080';

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function peakRssMb(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : 0;
  } catch {
    return 0;
  }
}

interface Scenario {
  config: Config;
  tenant: string;
  integrationId: string;
  companyId: string;
  jobId: string;
  resume: DocumentRef;
  apiKey: string;
}

/** `created` collects the scenario's topics, which the run deletes at its end. */
async function scenario(base: Config, name: string, partitions: number, sandbox: SandboxClient, repo: IntegrationRepository, kafka: KafkaClient, latencyMs: number, created: string[]): Promise<Scenario> {
  const topic = `bench-${name}-${randomUUID().slice(0, 8)}`;
  const config = loadConfig({ ...envFromConfig(base), TOPIC_APPLICATIONS: topic, TOPIC_PARTITIONS: String(partitions) });
  const specs = topicSpecs(config.topics);
  created.push(...specs.map((t) => t.topic));
  await withAdmin(kafka, (admin) => ensureTopics(admin, specs));
  const tenant = `bench-${name}-${randomUUID().slice(0, 6)}`;
  const apiKey = `key-${randomUUID()}`;
  const jobId = '4001';
  const { apiBaseUrl } = await sandbox.addTenant({ platform: 'greenhouse', tenant, credentials: { apiKey }, users: [USER], jobs: [jobId], rateLimit: null });
  if (latencyMs > 0) await sandbox.addFault({ kind: 'latency', ms: latencyMs, tenant });
  const resume = await sandbox.addFile(`${tenant}.pdf`, Buffer.from(`%PDF-1.4\n${'resume '.repeat(200)}\n%%EOF\n`), 'application/pdf');
  const companyId = `bench-${randomUUID().slice(0, 8)}`;
  const integration = await repo.createIntegration(companyId, {
    platform: 'greenhouse',
    name: `bench ${name}`,
    settings: { apiVersion: 'v1', onBehalfOf: USER },
    credentials: { apiKey },
    apiBaseUrl,
    enabled: true,
    allowMissingResume: false,
  });
  return { config, tenant, integrationId: integration.id, companyId, jobId, resume, apiKey };
}

function makeEvent(s: Scenario, i: number): ApplicationSubmitted {
  const applicationId = randomUUID();
  return {
    eventId: randomUUID(),
    occurredAt: Date.now(),
    applicationId,
    companyId: s.companyId,
    integrationId: s.integrationId,
    platform: 'greenhouse',
    jobId: 'job-1',
    atsJobId: s.jobId,
    candidate: { firstName: 'Bench', lastName: `Candidate${i}`, email: `bench+${applicationId}@example.org`, phone: null, location: null, links: [] },
    resume: s.resume,
    coverLetter: null,
    screeningAnswers: [],
    source: 'bench',
    consent: { dataProcessing: true, marketing: false },
    extras: {},
  };
}

/** Publish `count` events in batches; returns applicationId → publish time. */
async function publish(producer: Producer, codec: EventCodec, s: Scenario, count: number): Promise<Map<string, number>> {
  const sentAt = new Map<string, number>();
  const BATCH = 500;
  for (let i = 0; i < count; i += BATCH) {
    const events = Array.from({ length: Math.min(BATCH, count - i) }, (_, j) => makeEvent(s, i + j));
    const messages = await Promise.all(events.map(async (e) => ({ key: e.applicationId, value: await codec.encode(e) })));
    await producer.send({ topic: s.config.topics.applications, acks: ACKS_ALL, messages });
    const t = Date.now();
    for (const e of events) sentAt.set(e.applicationId, t);
  }
  return sentAt;
}

async function deliveredCount(db: pg.Pool, integrationId: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM deliveries WHERE integration_id = $1 AND status = 'delivered'", [integrationId]);
  return rows[0]!.n;
}

interface Dispatchers {
  group: string;
  ports: number[];
  pids: number[];
  /** Sum of the processes' CPU seconds (process.cpuUsage, user + system, from their /metrics). */
  cpuSeconds(): Promise<number>;
  /** Highest peak RSS of the processes so far, MB. */
  peakRssMb(): number;
  output(): string;
  stop(): Promise<void>;
}

/** process_cpu_seconds_total of one process: prom-client's default metric, fed by process.cpuUsage(). */
async function cpuSecondsOf(port: number): Promise<number> {
  const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());
  const m = /^process_cpu_seconds_total(?:\{[^}]*\})? (\S+)$/m.exec(text);
  if (!m) throw new Error(`no process_cpu_seconds_total on :${port}/metrics`);
  return Number(m[1]);
}

/** `processes` dispatchers in one consumer group, as deployed (LOG_LEVEL warn); resolves once all are ready. */
/**
 * The dispatcher runs with the flags it is deployed with (the heap ceiling decides its peak RSS),
 * unless a run asks for others (DispatchBenchOptions.dispatcherNodeOptions, for experiments).
 */
let dispatcherNodeOptions: string[] = deployedNodeOptions('dispatcher');

async function startDispatchers(s: Scenario, processes: number, maxInFlight: number, built: boolean, cpuProfileDir?: string, extraEnv: Record<string, string> = {}): Promise<Dispatchers> {
  const group = `bench-${randomUUID().slice(0, 8)}`;
  const procs: Array<ReturnType<typeof spawnTs>> = [];
  const ports: number[] = [];
  for (let i = 0; i < processes; i++) {
    const port = await freePort();
    const env = { ...envFromConfig(s.config), NODE_OPTIONS: dispatcherNodeOptions.join(' '), HTTP_PORT: String(port), DISPATCHER_MAX_IN_FLIGHT: String(maxInFlight), LOG_LEVEL: 'warn', ...extraEnv };
    const nodeArgs = cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfileDir}`] : [];
    procs.push(spawnTs('consumers/cli.ts', ['--role', 'dispatcher', '--group', group], env, { built, nodeArgs }));
    ports.push(port);
  }
  const output = (): string => procs.map((p) => p.output()).join('\n');
  const peaks = new Map<number, number>();
  const stop = async (): Promise<void> => {
    for (const p of procs) p.child.kill('SIGTERM');
    await Promise.all(procs.map((p) => p.exited));
  };
  try {
    const deadline = Date.now() + 60_000;
    for (const port of ports) {
      for (;;) {
        const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false);
        if (ok) break;
        if (Date.now() > deadline) throw new Error(`dispatcher did not become ready:\n${output()}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    group,
    ports,
    pids: procs.map((p) => p.child.pid!),
    cpuSeconds: async () => (await Promise.all(ports.map(cpuSecondsOf))).reduce((a, b) => a + b, 0),
    peakRssMb() {
      // Read while the processes live (VmHWM is gone once they exit).
      for (const p of procs) peaks.set(p.child.pid!, Math.max(peaks.get(p.child.pid!) ?? 0, peakRssMb(p.child.pid!)));
      return Math.max(0, ...peaks.values());
    },
    output,
    stop,
  };
}

/** Polls the delivery log until `count` of the scenario's applications are delivered; returns when that was seen, with the number of polls. */
async function waitDelivered(db: pg.Pool, s: Scenario, count: number, since: number, d: Dispatchers, say: (l: string) => void): Promise<number> {
  let reported = 0;
  for (let polls = 1; ; polls++) {
    const n = await deliveredCount(db, s.integrationId);
    if (n >= count) return polls;
    if (Date.now() - reported > 5_000) {
      say(`  … ${n}/${count}`);
      reported = Date.now();
    }
    if (Date.now() - since > 600_000) throw new Error(`only ${n}/${count} delivered after 10 min:\n${d.output().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface DispatcherRun {
  perSec: number;
  p50: number;
  p99: number;
  rss: number;
  cpuUsPerDelivery: number;
  /** CPU per delivery of the warm-up: the process's first deliveries, JIT and connections included. */
  coldCpuUsPerDelivery: number | undefined;
  /** Transactions the database committed per delivery (coalesced statements: most carry many deliveries). */
  statementsPerDelivery: number;
}

/**
 * Transactions committed or rolled back in this database so far (pg_stat_database). Every statement
 * of the dispatcher is its own transaction; a backend's counts are flushed when it exits, at the
 * latest, so read this with the dispatcher stopped.
 */
async function transactions(db: pg.Pool): Promise<number> {
  const client = await db.connect();
  try {
    await client.query('SELECT pg_stat_clear_snapshot()');
    const { rows } = await client.query<{ n: string }>('SELECT (xact_commit + xact_rollback)::text AS n FROM pg_stat_database WHERE datname = current_database()');
    return Number(rows[0]!.n);
  } finally {
    client.release();
  }
}

/**
 * Every dispatcher phase starts on vacuumed delivery tables, as autovacuum keeps them in production
 * (a lease is inserted and deleted per delivery; without it each round ran on more dead rows than
 * the last: CPU per delivery rose round by round). Untimed.
 */
async function vacuumDeliveryTables(db: pg.Pool): Promise<void> {
  await db.query('VACUUM ANALYZE deliveries, delivery_leases, delivery_routes');
}

async function runDispatcher(s: Scenario, producer: Producer, codec: EventCodec, db: pg.Pool, count: number, warmup: number, maxInFlight: number, built: boolean, say: (l: string) => void, cpuProfileDir?: string): Promise<DispatcherRun> {
  await vacuumDeliveryTables(db);
  const xacts0 = await transactions(db);
  const d = await startDispatchers(s, 1, maxInFlight, built, cpuProfileDir);
  let stopped = false;
  try {
    // The warm-up: a just-started process compiles its hot code (TurboFan, on threads process.cpuUsage
    // counts), opens its connections to the ATS and reads the schema and the integration. The raw
    // client is measured warm, so the dispatcher is too; the cold figure is reported beside.
    const cold0 = await d.cpuSeconds();
    let warmupPolls = 0;
    if (warmup > 0) {
      say(`  warm-up: ${warmup} applications…`);
      await publish(producer, codec, s, warmup);
      warmupPolls = await waitDelivered(db, s, warmup, Date.now(), d, say);
    }
    const cpu0 = await d.cpuSeconds();
    const t0 = Date.now();
    const sentAt = await publish(producer, codec, s, count);
    const polls = await waitDelivered(db, s, warmup + count, t0, d, say);
    // The window ends up to one poll (100 ms) after the last delivery: an idle dispatcher's CPU, noise.
    const cpu = (await d.cpuSeconds()) - cpu0;
    const { rows } = await db.query<{ application_id: string; delivered_at: Date }>('SELECT application_id, delivered_at FROM deliveries WHERE integration_id = $1', [s.integrationId]);
    const measured = rows.filter((r) => sentAt.has(r.application_id));
    const end = Math.max(...measured.map((r) => r.delivered_at.getTime()));
    const latencies = measured.map((r) => r.delivered_at.getTime() - sentAt.get(r.application_id)!).sort((a, b) => a - b);
    const rss = d.peakRssMb();
    await d.stop();
    stopped = true;
    // The bench's own statements (its polls, the read above, the snapshot reads) are not the dispatcher's;
    // the warm-up's are counted and divided over its deliveries too.
    const statements = (await transactions(db)) - xacts0 - warmupPolls - polls - 4;
    return {
      perSec: count / ((end - t0) / 1000),
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      rss,
      cpuUsPerDelivery: (cpu * 1e6) / count,
      coldCpuUsPerDelivery: warmup > 0 ? ((cpu0 - cold0) * 1e6) / warmup : undefined,
      statementsPerDelivery: statements / (warmup + count),
    };
  } finally {
    if (!stopped) await d.stop();
  }
}

/**
 * Steady load: `rate` applications/s published for `seconds` (each sent when due, in ticks of a few
 * ms), the dispatcher already running; latency from the publish call to the ATS's receipt (the
 * sandbox stamps each candidate's created_at when it creates it; the e-mail names the application).
 */
async function runSteady(s: Scenario, producer: Producer, codec: EventCodec, db: pg.Pool, sandbox: SandboxClient, rate: number, latencyMs: number, seconds: number, opts: DispatchBenchOptions): Promise<SteadyResult> {
  await vacuumDeliveryTables(db);
  const d = await startDispatchers(s, 1, opts.maxInFlight, opts.dispatcher === 'built');
  try {
    const sentAt = new Map<string, number>();
    // A fresh process's first records pay once for what every later one reuses (the schema fetched by id,
    // the integration read, the connection to the ATS, the JIT): ~0.5 s that a 60 s window would report as
    // its p99. They are published at the same rate before the window and reported on their own.
    const warmupSeconds = Math.min(STEADY_WARMUP_SECONDS, seconds);
    const warmup = Math.round(rate * warmupSeconds);
    const total = warmup + Math.round(rate * seconds);
    const t0 = Date.now();
    let sent = 0;
    let cpu0 = 0;
    let measuredFrom = 0;
    while (sent < total) {
      if (sent >= warmup && measuredFrom === 0) {
        cpu0 = await d.cpuSeconds();
        measuredFrom = Date.now();
      }
      const target = sent < warmup ? warmup : total;
      const due = Math.min(target, Math.floor(((Date.now() - t0) / 1000) * rate)) - sent;
      if (due <= 0) {
        await new Promise((r) => setTimeout(r, 2));
        continue;
      }
      const events = Array.from({ length: due }, (_, j) => makeEvent(s, sent + j));
      const at = Date.now();
      for (const e of events) sentAt.set(e.applicationId, at);
      const messages = await Promise.all(events.map(async (e) => ({ key: e.applicationId, value: await codec.encode(e) })));
      await producer.send({ topic: s.config.topics.applications, acks: ACKS_ALL, messages });
      sent += due;
    }
    const achievedPerSec = (total - warmup) / ((Date.now() - measuredFrom) / 1000);
    await waitDelivered(db, s, total, t0, d, opts.say);
    const cpu = (await d.cpuSeconds()) - cpu0;
    const received = await sandbox.records('candidates', 'greenhouse', s.tenant);
    const latencies: number[] = [];
    const warm: number[] = [];
    for (const c of received) {
      const email = (c.email_addresses as Array<{ value: string }>)[0]?.value ?? '';
      const applicationId = /^bench\+(.+)@example\.org$/.exec(email)?.[1];
      const at = applicationId ? sentAt.get(applicationId) : undefined;
      if (at === undefined) continue;
      (at < measuredFrom ? warm : latencies).push(Date.parse(c.created_at as string) - at);
    }
    if (latencies.length + warm.length < total) throw new Error(`the sandbox received ${latencies.length + warm.length} of ${total} applications`);
    latencies.sort((a, b) => a - b);
    warm.sort((a, b) => a - b);
    return {
      ratePerSec: rate,
      atsLatencyMs: latencyMs,
      seconds,
      published: total - warmup,
      achievedPerSec: Math.round(achievedPerSec),
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      maxMs: latencies.at(-1)!,
      cpuUsPerDelivery: Math.round((cpu * 1e6) / (total - warmup)),
      warmup: { seconds: warmupSeconds, published: warmup, p99Ms: warm.length ? percentile(warm, 99) : 0, maxMs: warm.at(-1) ?? 0 },
    };
  } finally {
    await d.stop();
  }
}

/**
 * Scale-out: `processes` dispatchers join one group on an empty topic and settle (group stable,
 * every partition assigned), are frozen (SIGSTOP), the backlog is published, and the clock starts
 * when they are thawed together: the drain rate without the join's rebalance in it.
 */
async function runScaleOut(s: Scenario, producer: Producer, codec: EventCodec, db: pg.Pool, kafka: KafkaClient, processes: number, count: number, opts: DispatchBenchOptions): Promise<{ perSec: number; cpuUsPerDelivery: number }> {
  await vacuumDeliveryTables(db);
  // A long session timeout: the group must outlive the freeze (a frozen member sends no heartbeats),
  // or the thaw would start with a rebalance.
  const d = await startDispatchers(s, processes, opts.maxInFlight, opts.dispatcher === 'built', undefined, { KAFKA_SESSION_TIMEOUT_MS: '120000' });
  try {
    await withAdmin(kafka, async (admin) => {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const g = await describeGroup(admin, d.group);
        if (g.state === 'Stable' && g.members.length === processes && g.members.every((m) => Object.keys(m.assignment).length > 0)) return;
        if (Date.now() > deadline) throw new Error(`the ${processes} dispatchers did not settle in one group:\n${d.output().slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    });
    // Read before the freeze: a frozen process spends nothing, so the window starts at the thaw.
    const cpu0 = await d.cpuSeconds();
    for (const pid of d.pids) process.kill(pid, 'SIGSTOP');
    try {
      await publish(producer, codec, s, count);
    } finally {
      for (const pid of d.pids) process.kill(pid, 'SIGCONT');
    }
    const t0 = Date.now();
    await waitDelivered(db, s, count, t0, d, opts.say);
    const cpu = (await d.cpuSeconds()) - cpu0;
    const { rows } = await db.query<{ end: Date }>('SELECT max(delivered_at) AS end FROM deliveries WHERE integration_id = $1', [s.integrationId]);
    return { perSec: count / ((rows[0]!.end.getTime() - t0) / 1000), cpuUsPerDelivery: (cpu * 1e6) / count };
  } finally {
    await d.stop();
  }
}

/**
 * kafkajs eachMessage with the same handler: one message at a time per partition, and partitions
 * one at a time (`concurrentPartitions` 1, kafkajs' default) or all in parallel.
 */
async function runNaive(s: Scenario, producer: Producer, codec: EventCodec, db: pg.Pool, count: number, seconds: number, concurrentPartitions: number): Promise<number> {
  const logger = createLogger({ level: 'warn', name: 'bench-naive' });
  const groupId = `bench-naive-${randomUUID().slice(0, 8)}`;
  const services = createDeliveryServices({ config: s.config, logger, groupId, metrics: createConsumerMetrics('naive') });
  await services.start();
  await publish(producer, codec, s, count);
  const consumer = new Kafka({ brokers: s.config.kafka.brokers, clientId: 'bench-naive', logLevel: logLevel.WARN }).consumer({ groupId });
  await consumer.connect();
  await consumer.subscribe({ topic: s.config.topics.applications, fromBeginning: true });
  const abort = new AbortController();
  let first = 0;
  await consumer.run({
    partitionsConsumedConcurrently: concurrentPartitions,
    eachMessage: async ({ topic, partition, message }) => {
      first ||= Date.now();
      await services.handle(
        { topic, partition, offset: message.offset, key: message.key, value: message.value, headers: readHeaders(message.headers), timestamp: message.timestamp },
        abort.signal,
      );
    },
  });
  const deadline = Date.now() + seconds * 1000 + 30_000;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    if (first && Date.now() - first >= seconds * 1000) break;
    if ((await deliveredCount(db, s.integrationId)) >= count) break;
  }
  const n = await deliveredCount(db, s.integrationId);
  const elapsed = (Date.now() - first) / 1000;
  await consumer.disconnect();
  await services.close();
  return n / elapsed;
}

/** The sandbox driven straight by undici: the three requests a Greenhouse delivery makes. */
async function runRaw(sandboxUrl: string, s: Scenario, seconds: number, concurrency: number): Promise<{ perSec: number; cpuUsPerDelivery: number }> {
  const origin = new URL(sandboxUrl).origin;
  const pool = new UndiciPool(origin, { connections: 64, pipelining: 1 });
  const ghPath = new URL((await sandboxClient(sandboxUrl).addTenant({ platform: 'greenhouse', tenant: `${s.tenant}-raw`, credentials: { apiKey: s.apiKey + '-raw' }, users: [USER], jobs: [s.jobId], rateLimit: null })).apiBaseUrl).pathname;
  const rawAuth = `Basic ${Buffer.from(`${s.apiKey}-raw:`).toString('base64')}`;
  const resumePath = new URL(s.resume.url).pathname;
  const result = await closedLoop(seconds, concurrency, async () => {
    const email = `raw+${randomUUID()}@example.org`;
    const file = await pool.request({ path: resumePath, method: 'GET' });
    const bytes = Buffer.from(await file.body.arrayBuffer());
    if (file.statusCode !== 200) throw new Error(`raw resume download answered ${file.statusCode}`);
    const search = await pool.request({ path: `${ghPath}/v1/candidates?email=${encodeURIComponent(email)}`, method: 'GET', headers: { authorization: rawAuth } });
    await search.body.arrayBuffer();
    if (search.statusCode !== 200) throw new Error(`raw search answered ${search.statusCode}`);
    const create = await pool.request({
      path: `${ghPath}/v1/candidates`,
      method: 'POST',
      headers: { authorization: rawAuth, 'on-behalf-of': USER, 'content-type': 'application/json' },
      body: JSON.stringify({
        first_name: 'Raw',
        last_name: 'Candidate',
        email_addresses: [{ value: email, type: 'personal' }],
        applications: [{ job_id: Number(s.jobId), attachments: [{ filename: 'cv.pdf', type: 'resume', content: bytes.toString('base64'), content_type: 'application/pdf' }] }],
      }),
    });
    await create.body.arrayBuffer();
    if (create.statusCode >= 300) throw new Error(`raw create answered ${create.statusCode}`);
  });
  await pool.close();
  return result;
}

/**
 * `concurrency` callers running `one` back to back for `seconds`: deliveries per second and this
 * process's CPU per delivery. The process does nothing else meanwhile (the sandbox is a process of
 * its own), so its CPU is the client's.
 */
async function closedLoop(seconds: number, concurrency: number, one: (i: number) => Promise<void>): Promise<{ perSec: number; cpuUsPerDelivery: number }> {
  let done = 0;
  const end = Date.now() + seconds * 1000;
  const worker = async (): Promise<void> => {
    while (Date.now() < end) {
      await one(done);
      done++;
    }
  };
  const t0 = Date.now();
  const cpu0 = process.cpuUsage();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const cpu = process.cpuUsage(cpu0);
  return { perSec: done / ((Date.now() - t0) / 1000), cpuUsPerDelivery: (cpu.user + cpu.system) / done };
}

/**
 * The connectors as the dispatcher calls them (createConnectors().deliver with the dispatcher's
 * options), at the raw client's concurrency: the same three requests plus the vendor logic (search
 * answer read, body built, answer checked) and our HTTP client, without Kafka or PostgreSQL.
 */
async function runConnectorsAlone(sandboxUrl: string, s: Scenario, seconds: number, concurrency: number): Promise<{ perSec: number; cpuUsPerDelivery: number }> {
  const tenant = `${s.tenant}-conn`;
  const apiKey = `${s.apiKey}-conn`;
  const { apiBaseUrl } = await sandboxClient(sandboxUrl).addTenant({ platform: 'greenhouse', tenant, credentials: { apiKey }, users: [USER], jobs: [s.jobId], rateLimit: null });
  const integration: Integration = {
    id: s.integrationId,
    companyId: s.companyId,
    platform: 'greenhouse',
    name: 'bench connectors alone',
    credentials: { apiKey },
    apiBaseUrl,
    settings: { apiVersion: 'v1', onBehalfOf: USER },
    enabled: true,
    allowMissingResume: false,
    version: 1,
  };
  const connectors = createConnectors({
    requestTimeoutMs: s.config.ats.requestTimeoutMs,
    allowPrivateNetworks: true,
    resumeMaxBytes: s.config.ats.resumeMaxBytes,
    resumeBytesInFlight: s.config.ats.resumeBytesInFlight,
    rateLimits: { greenhouse: null },
    connectionsPerOrigin: concurrency,
  });
  const result = await closedLoop(seconds, concurrency, async (i) => {
    const delivered = await connectors.deliver(makeEvent(s, i), integration);
    if (delivered.deduplicated) throw new Error('connectors alone: a fresh application came back deduplicated');
  });
  await connectors.close();
  return result;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export async function runDispatchBench(baseConfig: Config, opts: DispatchBenchOptions): Promise<DispatchBenchResult> {
  const { say } = opts;
  if (opts.dispatcherNodeOptions) dispatcherNodeOptions = opts.dispatcherNodeOptions;
  const loadAtStart = os.loadavg()[0]!;
  // A database of the bench's own, recreated each run with a throwaway keyring.
  // Named after DATABASE_URL's (as the chaos suite's): two people benching on one PostgreSQL must not
  // drop each other's database.
  const dbUrl = new URL(baseConfig.database.url);
  dbUrl.pathname = `${dbUrl.pathname.replace(/\/$/, '') || '/ats_relay'}_bench`;
  const benchDb = dbUrl.pathname.slice(1);
  const admin = new URL(baseConfig.database.url);
  admin.pathname = '/postgres';
  const adminClient = new pg.Client({ connectionString: admin.toString() });
  await adminClient.connect();
  await adminClient.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(benchDb)} WITH (FORCE)`);
  await adminClient.end();
  await migrate(dbUrl.toString());
  const keys = `bench:${Buffer.from(randomUUID().replace(/-/g, '')).toString('base64')}`;
  const sandboxPort = await freePort();
  const config = loadConfig({
    ...envFromConfig(baseConfig),
    DATABASE_URL: dbUrl.toString(),
    ATS_RELAY_ENCRYPTION_KEYS: keys,
    ATS_RATE_LIMITS: 'greenhouse=none',
    ATS_ALLOW_PRIVATE_NETWORKS: 'true',
    LOG_LEVEL: 'warn',
  });

  const sandboxProc = spawnTs('sandbox/cli.ts', ['--port', String(sandboxPort)], { ...envFromConfig(config), LOG_LEVEL: 'warn' });
  const sandboxUrl = `http://127.0.0.1:${sandboxPort}`;
  const logger = createLogger({ level: 'warn', name: 'bench' });
  const kafka = createKafka(config.kafka, logger, { clientIdSuffix: 'bench' });
  const producer = createProducer(kafka);
  const db = createPool(config.database, { max: 4 });
  const repo = createIntegrationRepository({ pool: db, keyring: new Keyring(keys) });
  /** Every topic the run made (about 1 700 partitions for a full run); deleted at the end. */
  const created: string[] = [];
  try {
    await waitForSandbox(sandboxUrl);
    await producer.connect();
    const sandbox = sandboxClient(sandboxUrl);
    const codec = createEventCodec({ registryUrl: config.schemaRegistry.url, topic: config.topics.applications });
    await codec.register();

    // Paired rounds: each round measures the raw client, the dispatcher and the naive consumers back
    // to back, so drift of a shared machine hits both sides of a ratio alike; every figure is the
    // median over the rounds, every ratio the median of the rounds' own ratios.
    const rounds: Array<{ raw: { perSec: number; cpuUsPerDelivery: number }; conn: { perSec: number; cpuUsPerDelivery: number }; d0: DispatcherRun; d50: DispatcherRun; naive0: number; naivePP0: number; naive50: number; naivePP50: number }> = [];
    let peakRss = 0;
    // Untimed: the sandbox's and the client's first requests (JIT, 64 connections) would weigh on round 1.
    say('warming up the sandbox and the raw client…');
    await runRaw(sandboxUrl, await scenario(config, 'warm', opts.partitions, sandbox, repo, kafka, 0, created), 3, Math.min(opts.maxInFlight, 128));
    for (let round = 1; round <= opts.rounds; round++) {
      say(`round ${round}/${opts.rounds}: raw sandbox capacity (undici, ${opts.rawSeconds} s)…`);
      const rawScenario = await scenario(config, `raw${round}`, opts.partitions, sandbox, repo, kafka, 0, created);
      const raw = await runRaw(sandboxUrl, rawScenario, opts.rawSeconds, Math.min(opts.maxInFlight, 128));
      say(`  ${raw.perSec.toFixed(0)} deliveries/s, ${raw.cpuUsPerDelivery.toFixed(0)} µs CPU per delivery`);
      say(`round ${round}/${opts.rounds}: the connectors alone (no Kafka, no PostgreSQL, ${opts.rawSeconds} s)…`);
      const conn = await runConnectorsAlone(sandboxUrl, rawScenario, opts.rawSeconds, Math.min(opts.maxInFlight, 128));
      say(`  ${conn.perSec.toFixed(0)} deliveries/s, ${conn.cpuUsPerDelivery.toFixed(0)} µs CPU per delivery`);
      const byLatency: Record<number, { d: DispatcherRun; naive: number; naivePerPartition: number }> = {};
      for (const latency of [0, 50]) {
        say(`dispatcher, ${latency} ms ATS latency: ${opts.count} applications, ${opts.partitions} partitions, ${opts.maxInFlight} in flight, NODE_OPTIONS ${dispatcherNodeOptions.join(' ')}…`);
        const s = await scenario(config, `d${latency}`, opts.partitions, sandbox, repo, kafka, latency, created);
        const d = await runDispatcher(s, producer, codec, db, opts.count, opts.warmup, opts.maxInFlight, opts.dispatcher === 'built', say, latency === 0 ? opts.cpuProfileDir : undefined);
        peakRss = Math.max(peakRss, d.rss);
        say(`  ${d.perSec.toFixed(0)} deliveries/s, ${d.cpuUsPerDelivery.toFixed(0)} µs CPU per delivery${d.coldCpuUsPerDelivery === undefined ? '' : ` (warm-up ${d.coldCpuUsPerDelivery.toFixed(0)} µs)`}, ${d.statementsPerDelivery.toFixed(2)} statements per delivery, p50 ${d.p50} ms, p99 ${d.p99} ms, peak RSS ${d.rss} MB`);
        const naiveCount = Math.min(opts.count, latency === 0 ? opts.count : 4_000);
        say(`naive consumer (kafkajs defaults: one message at a time), ${latency} ms ATS latency (${opts.naiveSeconds} s)…`);
        const n1 = await scenario(config, `n${latency}`, opts.partitions, sandbox, repo, kafka, latency, created);
        const naive = await runNaive(n1, producer, codec, db, naiveCount, opts.naiveSeconds, 1);
        say(`  ${naive.toFixed(1)} deliveries/s`);
        say(`naive consumer, one message at a time per partition, partitions in parallel, ${latency} ms (${opts.naiveSeconds} s)…`);
        const n2 = await scenario(config, `p${latency}`, opts.partitions, sandbox, repo, kafka, latency, created);
        const naivePerPartition = await runNaive(n2, producer, codec, db, naiveCount, opts.naiveSeconds, opts.partitions);
        say(`  ${naivePerPartition.toFixed(1)} deliveries/s`);
        byLatency[latency] = { d, naive, naivePerPartition };
      }
      rounds.push({ raw, conn, d0: byLatency[0]!.d, d50: byLatency[50]!.d, naive0: byLatency[0]!.naive, naivePP0: byLatency[0]!.naivePerPartition, naive50: byLatency[50]!.naive, naivePP50: byLatency[50]!.naivePerPartition });
    }

    const steady: SteadyResult[] = [];
    for (const rate of opts.steadyRates) {
      for (const latency of [0, 50]) {
        say(`steady load: ${rate} applications/s for ${opts.steadySeconds} s, ${latency} ms ATS latency…`);
        const s = await scenario(config, `s${rate}-${latency}`, opts.partitions, sandbox, repo, kafka, latency, created);
        const r = await runSteady(s, producer, codec, db, sandbox, rate, latency, opts.steadySeconds, opts);
        say(`  publish → ATS receipt p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, max ${r.maxMs} ms (published at ${r.achievedPerSec}/s; ${r.cpuUsPerDelivery} µs CPU per delivery)`);
        steady.push(r);
      }
    }

    let scaleOut: DispatchBenchResult['scaleOut'];
    if (opts.scaleOutCount > 0) {
      const drain: Record<number, { perSec: number; cpuUsPerDelivery: number }> = {};
      for (const processes of [1, 2]) {
        say(`scale-out: ${processes} dispatcher process(es) in one group draining a backlog of ${opts.scaleOutCount}…`);
        const s = await scenario(config, `x${processes}`, opts.partitions, sandbox, repo, kafka, 0, created);
        drain[processes] = await runScaleOut(s, producer, codec, db, kafka, processes, opts.scaleOutCount, opts);
        say(`  ${drain[processes].perSec.toFixed(0)} deliveries/s, ${drain[processes].cpuUsPerDelivery.toFixed(0)} µs CPU per delivery`);
      }
      scaleOut = {
        count: opts.scaleOutCount,
        perSec1: Math.round(drain[1]!.perSec),
        perSec2: Math.round(drain[2]!.perSec),
        ratio: Number((drain[2]!.perSec / drain[1]!.perSec).toFixed(2)),
        cpuUsPerDelivery1: Math.round(drain[1]!.cpuUsPerDelivery),
        cpuUsPerDelivery2: Math.round(drain[2]!.cpuUsPerDelivery),
      };
    }

    const round = (n: number, digits = 2): number => Number(n.toFixed(digits));
    const med = (pick: (r: (typeof rounds)[number]) => number): number => median(rounds.map(pick));
    // The round whose 0 / 50 ms dispatcher rate is the median one gives the latency figures.
    const medianRound = (pick: (r: (typeof rounds)[number]) => number): (typeof rounds)[number] => [...rounds].sort((a, b) => pick(a) - pick(b))[(rounds.length - 1) >> 1]!;
    const m0 = medianRound((r) => r.d0.perSec).d0;
    const m50 = medianRound((r) => r.d50.perSec).d50;
    const cpuRatio = (r: (typeof rounds)[number]): number => r.d0.cpuUsPerDelivery / r.raw.cpuUsPerDelivery;
    return {
      count: opts.count,
      partitions: opts.partitions,
      maxInFlight: opts.maxInFlight,
      rounds: opts.rounds,
      dispatcher: opts.dispatcher,
      dispatcherNodeOptions: dispatcherNodeOptions.join(' '),
      node: process.version,
      loadAvg: [round(loadAtStart, 1), round(os.loadavg()[0]!, 1)],
      deliveriesPerSec0ms: Math.round(med((r) => r.d0.perSec)),
      deliveriesPerSec50ms: Math.round(med((r) => r.d50.perSec)),
      cpuUsPerDelivery0ms: Math.round(med((r) => r.d0.cpuUsPerDelivery)),
      cpuUsPerDelivery50ms: Math.round(med((r) => r.d50.cpuUsPerDelivery)),
      warmup: opts.warmup,
      coldCpuUsPerDelivery0ms: opts.warmup > 0 ? Math.round(med((r) => r.d0.coldCpuUsPerDelivery ?? 0)) : undefined,
      statementsPerDelivery0ms: +med((r) => r.d0.statementsPerDelivery).toFixed(3),
      rawCpuUsPerDelivery: Math.round(med((r) => r.raw.cpuUsPerDelivery)),
      cpuRatioVsRaw0ms: round(med(cpuRatio)),
      connectorCpuUsPerDelivery: Math.round(med((r) => r.conn.cpuUsPerDelivery)),
      connectorCpuRatioVsRaw: round(med((r) => r.conn.cpuUsPerDelivery / r.raw.cpuUsPerDelivery)),
      pipelineCpuUsPerDelivery0ms: Math.round(med((r) => r.d0.cpuUsPerDelivery - r.conn.cpuUsPerDelivery)),
      naivePerSec0ms: round(med((r) => r.naive0), 1),
      naivePerSec50ms: round(med((r) => r.naive50), 1),
      naivePerPartitionPerSec0ms: round(med((r) => r.naivePP0), 1),
      naivePerPartitionPerSec50ms: round(med((r) => r.naivePP50), 1),
      rawSandboxPerSec0ms: Math.round(med((r) => r.raw.perSec)),
      rawSandboxSamples: rounds.map((r) => Math.round(r.raw.perSec)),
      ratioVsNaive0ms: round(med((r) => r.d0.perSec / r.naive0)),
      ratioVsNaive50ms: round(med((r) => r.d50.perSec / r.naive50)),
      ratioVsNaivePerPartition0ms: round(med((r) => r.d0.perSec / r.naivePP0)),
      ratioVsNaivePerPartition50ms: round(med((r) => r.d50.perSec / r.naivePP50)),
      ratioVsRaw0ms: round(med((r) => r.d0.perSec / r.raw.perSec)),
      samples: {
        deliveriesPerSec0ms: rounds.map((r) => Math.round(r.d0.perSec)),
        deliveriesPerSec50ms: rounds.map((r) => Math.round(r.d50.perSec)),
        cpuUsPerDelivery0ms: rounds.map((r) => Math.round(r.d0.cpuUsPerDelivery)),
        cpuUsPerDelivery50ms: rounds.map((r) => Math.round(r.d50.cpuUsPerDelivery)),
        statementsPerDelivery0ms: rounds.map((r) => +r.d0.statementsPerDelivery.toFixed(3)),
        rawCpuUsPerDelivery: rounds.map((r) => Math.round(r.raw.cpuUsPerDelivery)),
        connectorCpuUsPerDelivery: rounds.map((r) => Math.round(r.conn.cpuUsPerDelivery)),
        ratioVsRaw0ms: rounds.map((r) => round(r.d0.perSec / r.raw.perSec)),
        cpuRatioVsRaw0ms: rounds.map((r) => round(cpuRatio(r))),
      },
      p50Ms0ms: m0.p50,
      p99Ms0ms: m0.p99,
      p50Ms50ms: m50.p50,
      p99Ms50ms: m50.p99,
      p50Ms: m50.p50,
      p99Ms: m50.p99,
      peakRssMb: peakRss,
      steady,
      ...(scaleOut ? { scaleOut } : {}),
    };
  } finally {
    await producer.disconnect().catch(() => undefined);
    // Left behind, a day of runs gave the local broker ~7 000 partitions: its 512 MB heap ~80 % full
    // before anything else ran on it.
    // A few topics per request: the broker answers each within its request timeout.
    await withAdmin(kafka, async (admin) => {
      for (let i = 0; i < created.length; i += 20) await admin.deleteTopics(created.slice(i, i + 20));
    }).catch((err: unknown) => say(`could not delete the bench's topics: ${(err as Error).message}`));
    await db.end();
    sandboxProc.child.kill('SIGTERM');
    await sandboxProc.exited;
  }
}
