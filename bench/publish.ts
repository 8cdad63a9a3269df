/**
 * Publish benchmark: outbox relay throughput (rows/s from insert to acked) and direct publish
 * throughput, each beside a raw kafkajs producer sending the same bytes in the same run.
 *
 *   npm run bench:publish -- [--events 50000] [--rounds 5] [--batch-size N] [--request-size 500] [--direct-events 5000] [--concurrency 64]
 *
 * Every phase uses the same topic (unique to the run, TOPIC_PARTITIONS partitions), the same Avro
 * bytes and the same producer settings (idempotent, one request in flight, acks=all). Raw producer
 * relay and publisher are warmed up alike; then `rounds` rounds of the four timed phases. Each rate is the
 * median over the rounds; each ratio is the median of the rounds' own relay / raw ratios:
 *   raw     kafkajs producer.send of the pre-encoded messages, requestSize per request (about what one
 *           relay send carries: maxSendBytes of these records), one request after another.
 *   relay   rows inserted into the outbox with their record values (as enqueueApplication writes
 *           them), in chunks of 1,000 over 4 connections, while one relay process (npm run
 *           outbox-relay, its own batch size unless --batch-size) publishes them; the clock runs from the first
 *           insert to the last row acked and marked sent.
 *   relay (backlog)  the same relay process frozen (SIGSTOP) while the rows go in, then thawed: its
 *           own capacity (claim, send, mark) without the inserts competing for the machine.
 *   direct  publishApplication (validate, enrich from the cached registry, encode, send) with
 *           `concurrency` calls in flight, directEvents per round (warmed up first, untimed).
 * The last line printed is one JSON object with the figures.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
// The raw baseline is a bare kafkajs producer on purpose (what the port and the outbox cost is
// measured against it), so it bypasses lib/kafka/.
// eslint-disable-next-line no-restricted-imports
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { migrate } from '../db/migrate.ts';
import type { ApplicationSubmitted } from '../lib/application.ts';
import { runMain, wholeNumberFlag } from '../lib/cli.ts';
import { envFromConfig, type Config } from '../lib/config.ts';
import { childEnv } from '../dev/process-env.ts';
import { generateKey, Keyring } from '../registry/keyring.ts';
import { createPool, type Pool } from '../lib/db.ts';
import { createIntegrationRepository } from '../registry/repository.ts';
import { createKafka, withAdmin } from '../lib/kafka/index.ts';
import { createLogger } from '../lib/logger.ts';
import { createEventCodec } from '../lib/serde.ts';
import { ensureTopics, topicSpecs } from '../lib/topics.ts';
import { assertValidApplication } from '../producers/application-input.ts';
import { ensureDemoCompany } from '../dev/demo-company.ts';
import { enrichApplication } from '../producers/enrichment.ts';
import { insertOutboxRows } from '../producers/outbox/enqueue.ts';
import { DEFAULT_RELAY_TUNING } from '../producers/outbox/options.ts';
import { createApplicationPublisher, toMessage } from '../producers/publisher.ts';
import { sampleApplications } from '../dev/sample-application.ts';

export interface PublishBenchOptions {
  config: Config;
  /** Events for the raw and relay phases (default 50,000). */
  events?: number;
  /** Applications for the direct phase (default events / 10). */
  directEvents?: number;
  /** Rows per relay batch (default: the relay's own default). */
  batchSize?: number;
  /** Messages per raw produce request (default 500). */
  requestSize?: number;
  /** publishApplication calls in flight in the direct phase (default 64). */
  concurrency?: number;
  /** Rounds of raw / relay / backlog / direct; the figures are medians (default 5). */
  rounds?: number;
  log?: (line: string) => void;
}

export interface PublishBenchResult {
  bench: 'publish';
  events: number;
  /** The relay's rows per batch and the raw producer's messages per request. */
  batchSize: number;
  requestSize: number;
  partitions: number;
  /** The Node version of the bench and the relay process it starts. */
  node: string;
  /** Rates are medians over this many rounds; ratios are medians of the per-round ratios. */
  rounds: number;
  raw: { eventsPerSec: number; ms: number };
  relay: { rowsPerSec: number; ms: number; ratioToRaw: number; insertMs: number };
  relayBacklog: { rowsPerSec: number; ms: number; ratioToRaw: number };
  /** cpuUsPerEvent: this process's CPU per direct publish; rawCpuUsPerEvent: per raw producer event (medians). */
  direct: { eventsPerSec: number; ms: number; ratioToRaw: number; events: number; concurrency: number; cpuUsPerEvent: number; rawCpuUsPerEvent: number };
  /** Every round's wall-clock time per phase. */
  samplesMs: { raw: number[]; relay: number[]; insert: number[]; backlog: number[]; direct: number[] };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const rate = (n: number, ms: number): number => Math.round((n * 1000) / ms);

export async function runPublishBench(opts: PublishBenchOptions): Promise<PublishBenchResult> {
  const events = opts.events ?? 50_000;
  const directEvents = opts.directEvents ?? Math.max(1, Math.floor(events / 10));
  const batchSize = opts.batchSize ?? DEFAULT_RELAY_TUNING.batchSize;
  const requestSize = opts.requestSize ?? 500;
  const rounds = opts.rounds ?? 5;
  /** Events sent (raw) and relayed (relay process) before the first clock starts. */
  const warmup = Math.min(events, Math.max(batchSize, requestSize, Math.round(events / 10)));
  const concurrency = opts.concurrency ?? 64;
  const log = opts.log ?? (() => undefined);
  const topic = `bench-apps-${randomUUID().slice(0, 8)}`;
  const config: Config = { ...opts.config, topics: { ...opts.config.topics, applications: topic, retryTiers: [], dlq: `${topic}.dlq` } };
  const logger = createLogger({ level: 'warn', name: 'bench-publish' });

  await migrate(config.database.url);
  const pool = createPool(config.database, { max: 10, applicationName: 'ats-relay-bench' });
  const kafka = createKafka(config.kafka, logger, { clientIdSuffix: 'bench' });
  // The bench's own integration; a throwaway key when none is configured (nobody decrypts it).
  const keyring = new Keyring(config.crypto.encryptionKeys ?? `bench:${generateKey()}`);
  const repo = createIntegrationRepository({ pool, keyring });
  const companyId = `bench-${randomUUID().slice(0, 8)}`;
  const cleanups: Array<() => Promise<unknown>> = [];
  try {
    await withAdmin(kafka, (admin) => ensureTopics(admin, topicSpecs(config.topics).filter((s) => s.role === 'main')));
    cleanups.push(() => withAdmin(kafka, (admin) => admin.deleteTopics([topic])));
    const company = await ensureDemoCompany({ pool, repo: () => repo, companyId, sandboxUrl: `http://127.0.0.1:${config.http.sandboxPort}` });
    cleanups.push(async () => {
      if (company.createdIntegrationId) await repo.deleteIntegration(company.createdIntegrationId);
    });
    cleanups.push(() => pool.query('DELETE FROM outbox WHERE topic = $1', [topic]));

    // The same events and bytes for every phase.
    const generate = sampleApplications({ companyId, jobIds: company.jobIds, seed: 42 });
    const payloads: ApplicationSubmitted[] = [];
    for (let i = 0; i < events; i++) {
      const enriched = await enrichApplication(pool, assertValidApplication(generate.next()));
      if (enriched.status !== 'ok') throw new Error(`bench company not set up: ${enriched.status}`);
      payloads.push(...enriched.events);
    }
    const codec = createEventCodec({ registryUrl: config.schemaRegistry.url, topic });
    const values = await Promise.all(payloads.map((e) => codec.encode(e)));
    const messages = payloads.map((e, i) => toMessage(e, values[i]!));
    const bytes = messages.reduce((n, m) => n + (m.value as Buffer).length, 0);
    log(`${events} events, ${Math.round(bytes / events)} bytes each on average, topic ${topic} (${config.topics.partitions} partitions), relay batches of ${batchSize}, raw requests of ${requestSize}`);

    // Raw producer and relay process stay up for every round; both are warmed up first (JIT, metadata,
    // connections) with the same number of events, untimed.
    const rawKafka = new Kafka({ clientId: 'ats-relay-bench-raw', brokers: config.kafka.brokers, logLevel: logLevel.NOTHING });
    const raw = rawKafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
    await raw.connect();
    cleanups.push(() => raw.disconnect());
    const sendRaw = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i += requestSize) await raw.send({ topic, acks: -1, messages: messages.slice(i, Math.min(count, i + requestSize)) });
    };
    await sendRaw(warmup);

    // The relay runs as it is deployed: its own process (npm run outbox-relay), here on the bench topic.
    const relayProcess = await startRelayProcess(config, batchSize);
    cleanups.push(() => relayProcess.stop());
    const relayed = async (deadline: number): Promise<void> => {
      // The partial pending index keeps this cheap while the relay works; counting sent rows would scan the table.
      for (;;) {
        const { rows } = await pool.query<{ pending: number }>(
          'SELECT count(*)::int AS pending FROM outbox WHERE topic = $1 AND sent_at IS NULL AND failed_at IS NULL',
          [topic],
        );
        if (rows[0]!.pending === 0) return;
        if (performance.now() > deadline) throw new Error(`relay did not finish: ${rows[0]!.pending} rows pending\n${relayProcess.output()}`);
        await sleep(10);
      }
    };
    await insertRows(pool, topic, payloads.slice(0, warmup), values.slice(0, warmup));
    await relayed(performance.now() + 60_000);

    // Every relay phase starts on a vacuumed outbox, as autovacuum keeps it on a production database
    // (a queue table: every row is inserted, updated once and deleted). Untimed.
    const vacuum = (): Promise<unknown> => pool.query('VACUUM outbox');

    // Direct publishApplication: one publisher for every round, warmed up alike (its first publishes
    // connect, register and fill the delivery-target cache), untimed.
    const publisher = createApplicationPublisher({ kafka: config.kafka, registryUrl: config.schemaRegistry.url, topic, pool, logger });
    await publisher.start();
    cleanups.push(() => publisher.close());
    // The inputs are generated before the clock starts: what a backend hands over, not the bench's work.
    const directInputs = (count: number): ReturnType<typeof generate.next>[] => Array.from({ length: count }, () => generate.next());
    const publishDirect = async (inputs: ReturnType<typeof generate.next>[]): Promise<void> => {
      const count = inputs.length;
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(concurrency, count) }, async () => {
          while (next < inputs.length) await publisher.publishApplication(inputs[next++]!);
        }),
      );
    };
    await publishDirect(directInputs(Math.min(directEvents, 1_000)));

    // Rounds alternate the phases, so drift (page cache, JIT, the broker's log segments) hits each alike.
    const samples = { raw: [] as number[], relay: [] as number[], insert: [] as number[], backlog: [] as number[], direct: [] as number[] };
    const cpuUs = { raw: [] as number[], direct: [] as number[] };
    const cpuOf = (since: NodeJS.CpuUsage): number => {
      const d = process.cpuUsage(since);
      return d.user + d.system;
    };
    for (let round = 1; round <= rounds; round++) {
      // This process's CPU per event (process.cpuUsage) while it alone works: machine-independent beside the rates.
      let cpu0 = process.cpuUsage();
      let t0 = performance.now();
      await sendRaw(events);
      samples.raw.push(performance.now() - t0);
      cpuUs.raw.push(cpuOf(cpu0) / events);

      // insert → acked: the rows are inserted while the relay publishes them.
      await vacuum();
      t0 = performance.now();
      await insertRows(pool, topic, payloads, values);
      samples.insert.push(performance.now() - t0);
      await relayed(t0 + 300_000);
      samples.relay.push(performance.now() - t0);

      // Backlog: the relay is frozen (SIGSTOP) while the rows go in, and the clock starts when it resumes.
      await vacuum();
      relayProcess.freeze();
      await insertRows(pool, topic, payloads, values);
      t0 = performance.now();
      relayProcess.thaw();
      await relayed(t0 + 300_000);
      samples.backlog.push(performance.now() - t0);

      const inputs = directInputs(directEvents);
      cpu0 = process.cpuUsage();
      t0 = performance.now();
      await publishDirect(inputs);
      samples.direct.push(performance.now() - t0);
      cpuUs.direct.push(cpuOf(cpu0) / directEvents);

      const r = (ms: number[]): string => rate(events, ms.at(-1)!).toLocaleString('en');
      const pct = (ms: number[]): string => `${Math.round((100 * samples.raw.at(-1)!) / ms.at(-1)!)} %`;
      const directRate = rate(directEvents, samples.direct.at(-1)!);
      const cpu = `CPU per event: raw ${cpuUs.raw.at(-1)!.toFixed(0)} µs, direct ${cpuUs.direct.at(-1)!.toFixed(0)} µs`;
      log(
        `round ${round}/${rounds}: raw ${r(samples.raw)} events/s · relay ${r(samples.relay)} rows/s insert → acked (${pct(samples.relay)}; inserts ${(samples.insert.at(-1)! / 1000).toFixed(2)} s) · relay ${r(samples.backlog)} rows/s from a backlog (${pct(samples.backlog)}) · direct ${directRate.toLocaleString('en')} events/s (${Math.round((100 * directRate) / rate(events, samples.raw.at(-1)!))} %) · ${cpu}`,
      );
    }
    await relayProcess.stop();
    const rawMs = median(samples.raw);
    // Each round's relay against the same round's raw run, then the median: the machine's speed drifts
    // between rounds (other tenants, page cache), and pairing cancels what hits both alike.
    const pairedRatio = (relayMs: number[]): number => +median(relayMs.map((ms, i) => samples.raw[i]! / ms)).toFixed(3);
    const relayMs = median(samples.relay);
    const drainMs = median(samples.backlog);
    log(`node                   ${process.version}`);
    log(`raw kafkajs producer   ${rate(events, rawMs).toLocaleString('en')} events/s (median of ${rounds}, ${(rawMs / 1000).toFixed(2)} s)`);
    log(`outbox relay           ${rate(events, relayMs).toLocaleString('en')} rows/s insert → acked (${(relayMs / 1000).toFixed(2)} s; the inserts took ${(median(samples.insert) / 1000).toFixed(2)} s)`);
    log(`outbox relay (backlog) ${rate(events, drainMs).toLocaleString('en')} rows/s claim → acked → marked (${(drainMs / 1000).toFixed(2)} s)`);
    const directMs = median(samples.direct);
    log(`direct publish         ${rate(directEvents, directMs).toLocaleString('en')} events/s (${directEvents} applications per round, ${concurrency} in flight, ${(directMs / 1000).toFixed(2)} s)`);

    const rawRate = rate(events, rawMs);
    const result: PublishBenchResult = {
      bench: 'publish',
      events,
      batchSize,
      requestSize,
      partitions: config.topics.partitions,
      node: process.version,
      raw: { eventsPerSec: rawRate, ms: Math.round(rawMs) },
      rounds,
      relay: { rowsPerSec: rate(events, relayMs), ms: Math.round(relayMs), ratioToRaw: pairedRatio(samples.relay), insertMs: Math.round(median(samples.insert)) },
      relayBacklog: { rowsPerSec: rate(events, drainMs), ms: Math.round(drainMs), ratioToRaw: pairedRatio(samples.backlog) },
      samplesMs: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, v.map(Math.round)])) as PublishBenchResult['samplesMs'],
      // Rates per event, so the ratio compares like with like although the phases send different counts.
      direct: {
        eventsPerSec: rate(directEvents, directMs),
        ms: Math.round(directMs),
        ratioToRaw: +median(samples.direct.map((ms, i) => rate(directEvents, ms) / rate(events, samples.raw[i]!))).toFixed(3),
        events: directEvents,
        concurrency,
        cpuUsPerEvent: Math.round(median(cpuUs.direct)),
        rawCpuUsPerEvent: Math.round(median(cpuUs.raw)),
      },
    };
    log(`relay / raw = ${(result.relay.ratioToRaw * 100).toFixed(0)} % (insert → acked), ${(result.relayBacklog.ratioToRaw * 100).toFixed(0)} % (backlog); direct / raw = ${(result.direct.ratioToRaw * 100).toFixed(0)} %`);
    return result;
  } finally {
    for (const fn of cleanups.reverse()) await fn().catch(() => undefined);
    await pool.end();
  }
}

/**
 * Insert the events as outbox rows the way many backend transactions would: chunks of 1,000 over 4
 * connections, each row with its record value as enqueueApplication writes it once its codec is warm.
 */
async function insertRows(pool: Pool, topic: string, payloads: ApplicationSubmitted[], values: Buffer[]): Promise<void> {
  const chunk = 1_000;
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next; i < payloads.length; i = next) {
      next += chunk;
      const rows = payloads.slice(i, i + chunk).map((e, j) => ({ eventId: e.eventId, topic, key: e.applicationId, value: values[i + j]! }));
      await insertOutboxRows(pool, rows);
    }
  };
  await Promise.all([1, 2, 3, 4].map(worker));
}

/** `npm run outbox-relay` on the bench topic as a child process; resolves once it is relaying. */
interface RelayProcess {
  stop(): Promise<void>;
  /** SIGSTOP: the process holds its connections but does nothing until thawed. */
  freeze(): void;
  thaw(): void;
  output(): string;
}

async function startRelayProcess(config: Config, batchSize: number): Promise<RelayProcess> {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', 'producers/outbox/cli.ts', '--batch-size', String(batchSize), '--poll-interval-ms', '200'], {
    cwd: root,
    env: childEnv({ ...envFromConfig(config), LOG_LEVEL: 'info', HTTP_PORT: '0' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const onData = (b: Buffer): void => {
      out += b.toString();
      if (out.includes('outbox relay started')) resolve();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    void exited.then(() => reject(new Error(`outbox relay exited early:\n${out}`)));
  });
  let stopping: Promise<void> | undefined;
  return {
    output: () => out,
    freeze: () => void child.kill('SIGSTOP'),
    thaw: () => void child.kill('SIGCONT'),
    stop() {
      stopping ??= (async () => {
        if (child.exitCode === null) {
          child.kill('SIGCONT');
          child.kill('SIGTERM');
        }
        await exited;
      })();
      return stopping;
    },
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await runMain({
    name: 'bench:publish',
    usage: `Usage: npm run bench:publish -- [--events N] [--rounds N] [--batch-size N] [--request-size N] [--direct-events N] [--concurrency N]

Outbox relay and direct publish throughput beside a raw kafkajs producer (same bytes, same run).
Uses a topic and company of its own and removes them afterwards. The last line is JSON.`,
    options: {
      events: { type: 'string' },
      'batch-size': { type: 'string' },
      'request-size': { type: 'string' },
      'direct-events': { type: 'string' },
      concurrency: { type: 'string' },
      rounds: { type: 'string' },
    },
    async run({ config, values }) {
      const result = await runPublishBench({
        config,
        events: wholeNumberFlag('events', values.events),
        directEvents: wholeNumberFlag('direct-events', values['direct-events']),
        batchSize: wholeNumberFlag('batch-size', values['batch-size']),
        requestSize: wholeNumberFlag('request-size', values['request-size']),
        concurrency: wholeNumberFlag('concurrency', values.concurrency),
        rounds: wholeNumberFlag('rounds', values.rounds),
        log: (line) => console.log(line),
      });
      console.log(JSON.stringify(result));
    },
  });
}
