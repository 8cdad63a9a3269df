/**
 * Dispatcher throughput, measured beside its baselines in the same run:
 *   - the dispatcher (a separate process, as deployed) at 0 ms and 50 ms added ATS latency;
 *   - a naive consumer: kafkajs eachMessage, one message at a time per partition, same handler and
 *     sandbox;
 *   - the sandbox's raw capacity: undici sending the same requests a delivery makes, no Kafka;
 *     measured three times (first, after the 0 ms dispatcher run, last), the median reported.
 * N applications are published to fresh 12-partition topics while the dispatcher runs; end-to-end
 * latency is publish → delivered (including the queueing of the backlog). Peak RSS is the
 * dispatcher process's high-water mark; the dispatcher runs as production runs it, the built
 * JavaScript (`npm run build`) under plain node, unless `source` asks for the sources through tsx.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import pg from 'pg';
import { Pool as UndiciPool } from 'undici';
import type { ApplicationSubmitted, DocumentRef } from '../lib/application.ts';
import { envFromConfig, loadConfig, type Config } from '../lib/config.ts';
import { Keyring } from '../registry/keyring.ts';
import { createPool } from '../lib/db.ts';
import { readHeaders } from '../lib/headers.ts';
import { createIntegrationRepository, type IntegrationRepository } from '../registry/repository.ts';
// The naive baseline is kafkajs as its users write it (eachMessage, its defaults), not ats-relay's port.
// eslint-disable-next-line no-restricted-imports
import { Kafka, logLevel } from 'kafkajs';
import { ACKS_ALL, createKafka, createProducer, withAdmin, type KafkaClient, type Producer } from '../lib/kafka/index.ts';
import { createLogger } from '../lib/logger.ts';
import { createEventCodec, type EventCodec } from '../lib/serde.ts';
import { ensureTopics, topicSpecs } from '../lib/topics.ts';
import { migrate } from '../db/migrate.ts';
import { createDeliveryServices } from '../consumers/dispatcher/index.ts';
import { createConsumerMetrics } from '../consumers/dispatcher/metrics.ts';
import { sandboxClient, waitForSandbox, type SandboxClient } from '../sandbox/client.ts';
import { spawnTs } from '../dev/spawn-entrypoint.ts';

export interface DispatchBenchOptions {
  count: number;
  partitions: number;
  maxInFlight: number;
  /** How long each naive run may take (its rate is what it delivered per second). */
  naiveSeconds: number;
  rawSeconds: number;
  /** Run the dispatcher from dist/ with plain node (as deployed; the caller builds first) or from the sources through tsx. */
  dispatcher: 'built' | 'source';
  say: (line: string) => void;
}

export interface DispatchBenchResult {
  count: number;
  partitions: number;
  maxInFlight: number;
  /** Which dispatcher was measured (and whose peak RSS peakRssMb is). */
  dispatcher: 'built' | 'source';
  deliveriesPerSec0ms: number;
  deliveriesPerSec50ms: number;
  /** kafkajs eachMessage with its defaults: one message at a time. */
  naivePerSec0ms: number;
  naivePerSec50ms: number;
  /** eachMessage with partitionsConsumedConcurrently = partitions: one message at a time per partition. */
  naivePerPartitionPerSec0ms: number;
  naivePerPartitionPerSec50ms: number;
  /** Median of three raw runs (see rawSandboxSamples). */
  rawSandboxPerSec0ms: number;
  rawSandboxSamples: number[];
  ratioVsNaive0ms: number;
  ratioVsNaive50ms: number;
  ratioVsNaivePerPartition0ms: number;
  ratioVsNaivePerPartition50ms: number;
  ratioVsRaw0ms: number;
  p50Ms0ms: number;
  p99Ms0ms: number;
  p50Ms50ms: number;
  p99Ms50ms: number;
  p50Ms: number;
  p99Ms: number;
  peakRssMb: number;
}

const USER = '4080';

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

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

async function scenario(base: Config, name: string, partitions: number, sandbox: SandboxClient, repo: IntegrationRepository, kafka: KafkaClient, latencyMs: number): Promise<Scenario> {
  const topic = `bench-${name}-${randomUUID().slice(0, 8)}`;
  const config = loadConfig({ ...envFromConfig(base), TOPIC_APPLICATIONS: topic, TOPIC_PARTITIONS: String(partitions) });
  await withAdmin(kafka, (admin) => ensureTopics(admin, topicSpecs(config.topics)));
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

async function runDispatcher(s: Scenario, producer: Producer, codec: EventCodec, db: pg.Pool, count: number, maxInFlight: number, built: boolean, say: (l: string) => void) {
  const port = await freePort();
  const env = { ...envFromConfig(s.config), HTTP_PORT: String(port), DISPATCHER_MAX_IN_FLIGHT: String(maxInFlight), LOG_LEVEL: 'warn' };
  const proc = spawnTs('consumers/cli.ts', ['--role', 'dispatcher', '--group', `bench-${randomUUID().slice(0, 8)}`], env, { built });
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false);
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`dispatcher did not become ready:\n${proc.output()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const t0 = Date.now();
    const sentAt = await publish(producer, codec, s, count);
    let last = 0;
    for (;;) {
      const n = await deliveredCount(db, s.integrationId);
      if (n >= count) break;
      if (n !== last && Date.now() % 5 < 1) say(`  … ${n}/${count}`);
      last = n;
      if (Date.now() - t0 > 600_000) throw new Error(`only ${n}/${count} delivered after 10 min:\n${proc.output().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const { rows } = await db.query<{ application_id: string; delivered_at: Date }>('SELECT application_id, delivered_at FROM deliveries WHERE integration_id = $1', [s.integrationId]);
    const end = Math.max(...rows.map((r) => r.delivered_at.getTime()));
    const latencies = rows.map((r) => r.delivered_at.getTime() - (sentAt.get(r.application_id) ?? t0)).sort((a, b) => a - b);
    const rss = peakRssMb(proc.child.pid!);
    return { perSec: count / ((end - t0) / 1000), p50: percentile(latencies, 50), p99: percentile(latencies, 99), rss };
  } finally {
    proc.child.kill('SIGTERM');
    await proc.exited;
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
async function runRaw(sandboxUrl: string, s: Scenario, seconds: number, concurrency: number): Promise<number> {
  const origin = new URL(sandboxUrl).origin;
  const pool = new UndiciPool(origin, { connections: 64, pipelining: 1 });
  const ghPath = new URL((await sandboxClient(sandboxUrl).addTenant({ platform: 'greenhouse', tenant: `${s.tenant}-raw`, credentials: { apiKey: s.apiKey + '-raw' }, users: [USER], jobs: [s.jobId], rateLimit: null })).apiBaseUrl).pathname;
  const rawAuth = `Basic ${Buffer.from(`${s.apiKey}-raw:`).toString('base64')}`;
  const resumePath = new URL(s.resume.url).pathname;
  let done = 0;
  const end = Date.now() + seconds * 1000;
  const worker = async (): Promise<void> => {
    while (Date.now() < end) {
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
      done++;
    }
  };
  const t0 = Date.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const rate = done / ((Date.now() - t0) / 1000);
  await pool.close();
  return rate;
}

export async function runDispatchBench(baseConfig: Config, opts: DispatchBenchOptions): Promise<DispatchBenchResult> {
  const { say } = opts;
  // A database of the bench's own, recreated each run with a throwaway keyring.
  const dbUrl = new URL(baseConfig.database.url);
  dbUrl.pathname = '/ats_relay_bench';
  const admin = new URL(baseConfig.database.url);
  admin.pathname = '/postgres';
  const adminClient = new pg.Client({ connectionString: admin.toString() });
  await adminClient.connect();
  await adminClient.query('DROP DATABASE IF EXISTS ats_relay_bench WITH (FORCE)');
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
  try {
    await waitForSandbox(sandboxUrl);
    await producer.connect();
    const sandbox = sandboxClient(sandboxUrl);
    const codec = createEventCodec({ registryUrl: config.schemaRegistry.url, topic: config.topics.applications });
    await codec.register();

    // The raw capacity is measured three times (first, right after the 0 ms dispatcher run, last) and
    // the median taken: on a shared machine one 10-second sample of it varies a lot.
    const rawSamples: number[] = [];
    const measureRaw = async (): Promise<void> => {
      say(`raw sandbox capacity (undici, ${opts.rawSeconds} s)…`);
      const rawScenario = await scenario(config, `raw${rawSamples.length}`, opts.partitions, sandbox, repo, kafka, 0);
      rawSamples.push(await runRaw(sandboxUrl, rawScenario, opts.rawSeconds, Math.min(opts.maxInFlight, 128)));
      say(`  ${rawSamples.at(-1)!.toFixed(0)} deliveries/s`);
    };
    await measureRaw();

    const results: Record<number, { perSec: number; p50: number; p99: number; rss: number; naive: number; naivePerPartition: number }> = {};
    for (const latency of [0, 50]) {
      say(`dispatcher, ${latency} ms ATS latency: ${opts.count} applications, ${opts.partitions} partitions, ${opts.maxInFlight} in flight…`);
      const s = await scenario(config, `d${latency}`, opts.partitions, sandbox, repo, kafka, latency);
      const d = await runDispatcher(s, producer, codec, db, opts.count, opts.maxInFlight, opts.dispatcher === 'built', say);
      say(`  ${d.perSec.toFixed(0)} deliveries/s, p50 ${d.p50} ms, p99 ${d.p99} ms, peak RSS ${d.rss} MB`);
      if (latency === 0) await measureRaw();
      const naiveCount = Math.min(opts.count, latency === 0 ? opts.count : 4_000);
      say(`naive consumer (kafkajs defaults: one message at a time), ${latency} ms ATS latency (${opts.naiveSeconds} s)…`);
      const n1 = await scenario(config, `n${latency}`, opts.partitions, sandbox, repo, kafka, latency);
      const naive = await runNaive(n1, producer, codec, db, naiveCount, opts.naiveSeconds, 1);
      say(`  ${naive.toFixed(1)} deliveries/s`);
      say(`naive consumer, one message at a time per partition, partitions in parallel, ${latency} ms (${opts.naiveSeconds} s)…`);
      const n2 = await scenario(config, `p${latency}`, opts.partitions, sandbox, repo, kafka, latency);
      const naivePerPartition = await runNaive(n2, producer, codec, db, naiveCount, opts.naiveSeconds, opts.partitions);
      say(`  ${naivePerPartition.toFixed(1)} deliveries/s`);
      results[latency] = { ...d, naive, naivePerPartition };
    }
    await measureRaw();
    const raw0 = [...rawSamples].sort((a, b) => a - b)[1]!;
    const r0 = results[0]!;
    const r50 = results[50]!;
    const round = (n: number, digits = 2): number => Number(n.toFixed(digits));
    return {
      count: opts.count,
      partitions: opts.partitions,
      maxInFlight: opts.maxInFlight,
      dispatcher: opts.dispatcher,
      deliveriesPerSec0ms: Math.round(r0.perSec),
      deliveriesPerSec50ms: Math.round(r50.perSec),
      naivePerSec0ms: round(r0.naive, 1),
      naivePerSec50ms: round(r50.naive, 1),
      naivePerPartitionPerSec0ms: round(r0.naivePerPartition, 1),
      naivePerPartitionPerSec50ms: round(r50.naivePerPartition, 1),
      rawSandboxPerSec0ms: Math.round(raw0),
      rawSandboxSamples: rawSamples.map((r) => Math.round(r)),
      ratioVsNaive0ms: round(r0.perSec / r0.naive),
      ratioVsNaive50ms: round(r50.perSec / r50.naive),
      ratioVsNaivePerPartition0ms: round(r0.perSec / r0.naivePerPartition),
      ratioVsNaivePerPartition50ms: round(r50.perSec / r50.naivePerPartition),
      ratioVsRaw0ms: round(r0.perSec / raw0),
      p50Ms0ms: r0.p50,
      p99Ms0ms: r0.p99,
      p50Ms50ms: r50.p50,
      p99Ms50ms: r50.p99,
      p50Ms: r50.p50,
      p99Ms: r50.p99,
      peakRssMb: Math.max(r0.rss, r50.rss),
    };
  } finally {
    await producer.disconnect().catch(() => undefined);
    await db.end();
    sandboxProc.child.kill('SIGTERM');
    await sandboxProc.exited;
  }
}
