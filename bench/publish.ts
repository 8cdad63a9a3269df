/**
 * Publish benchmark: outbox relay throughput (rows/s from insert to acked) and direct publish
 * throughput, each beside a raw kafkajs producer sending the same bytes in the same run.
 *
 *   npm run bench:publish -- [--events 20000] [--batch-size 500] [--direct-events 5000] [--concurrency 64]
 *
 * Every phase uses the same topic (unique to the run, TOPIC_PARTITIONS partitions), the same Avro
 * bytes and the same producer settings (idempotent, one request in flight, acks=all):
 *   raw     kafkajs producer.send of the pre-encoded messages, batchSize per request, one after another.
 *   relay   rows inserted into the outbox in chunks of 1,000 (4 connections) while one relay process
 *           (npm run outbox-relay, batchSize rows per batch) publishes them; the clock runs from the
 *           first insert to the last row acked and marked sent.
 *   relay (backlog)  the same rows inserted first, then drained by an in-process relay: its own
 *           capacity (claim, encode, send, mark), without the cost of the inserts.
 *   direct  publishApplication (validate, enrich from PostgreSQL, encode, send one application per
 *           request) with `concurrency` calls in flight.
 * The last line printed is one JSON object with the figures.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { migrate } from '../db/migrate.ts';
import type { ApplicationSubmitted } from '../lib/application.ts';
import { runMain, UsageError } from '../lib/cli.ts';
import { envFromConfig, type Config } from '../lib/config.ts';
import { childEnv } from '../lib/process-env.ts';
import { generateKey, Keyring } from '../lib/crypto/keyring.ts';
import { createPool, type Pool } from '../lib/db.ts';
import { createIntegrationRepository } from '../lib/integrations/repository.ts';
import { createKafka, createProducer, withAdmin } from '../lib/kafka.ts';
import { createLogger } from '../lib/logger.ts';
import { createEventCodec } from '../lib/serde.ts';
import { ensureTopics, topicSpecs } from '../lib/topics.ts';
import { assertValidApplication } from '../producers/application-input.ts';
import { ensureDemoCompany } from '../producers/demo-company.ts';
import { enrichApplication } from '../producers/enrichment.ts';
import { createOutboxRelay } from '../producers/outbox/relay.ts';
import { createApplicationPublisher, toMessage } from '../producers/publisher.ts';
import { sampleApplications } from '../producers/sample-application.ts';

export interface PublishBenchOptions {
  config: Config;
  /** Events for the raw and relay phases (default 20,000). */
  events?: number;
  /** Applications for the direct phase (default events / 4). */
  directEvents?: number;
  /** Messages per produce request (raw) and rows per relay batch (default 500). */
  batchSize?: number;
  /** publishApplication calls in flight in the direct phase (default 64). */
  concurrency?: number;
  log?: (line: string) => void;
}

export interface PublishBenchResult {
  bench: 'publish';
  events: number;
  batchSize: number;
  partitions: number;
  raw: { eventsPerSec: number; ms: number };
  relay: { rowsPerSec: number; ms: number; ratioToRaw: number; batches: number; insertMs: number };
  relayBacklog: { rowsPerSec: number; ms: number; ratioToRaw: number };
  direct: { eventsPerSec: number; ms: number; ratioToRaw: number; events: number; concurrency: number };
}

const rate = (n: number, ms: number): number => Math.round((n * 1000) / ms);

export async function runPublishBench(opts: PublishBenchOptions): Promise<PublishBenchResult> {
  const events = opts.events ?? 20_000;
  const directEvents = opts.directEvents ?? Math.max(1, Math.floor(events / 4));
  const batchSize = opts.batchSize ?? 500;
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
    cleanups.push(() => withAdmin(kafka, (admin) => admin.deleteTopics({ topics: [topic] })));
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
    const messages = await Promise.all(payloads.map(async (e) => toMessage(e, await codec.encode(e))));
    const bytes = messages.reduce((n, m) => n + (m.value as Buffer).length, 0);
    log(`${events} events, ${Math.round(bytes / events)} bytes each on average, topic ${topic} (${config.topics.partitions} partitions), batch ${batchSize}`);

    // --- raw kafkajs ---------------------------------------------------------------------------
    const rawKafka = new Kafka({ clientId: 'ats-relay-bench-raw', brokers: config.kafka.brokers, logLevel: logLevel.NOTHING });
    const raw = rawKafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
    await raw.connect();
    let t0 = performance.now();
    for (let i = 0; i < messages.length; i += batchSize) await raw.send({ topic, acks: -1, messages: messages.slice(i, i + batchSize) });
    const rawMs = performance.now() - t0;
    await raw.disconnect();
    log(`raw kafkajs producer   ${rate(events, rawMs).toLocaleString('en')} events/s (${(rawMs / 1000).toFixed(2)} s)`);

    // --- outbox relay: insert → acked ------------------------------------------------------------
    // The relay runs as it is deployed: its own process (npm run outbox-relay), here on the bench topic.
    const relayProcess = await startRelayProcess(config, batchSize);
    cleanups.push(() => relayProcess.stop());
    t0 = performance.now();
    await insertRows(pool, topic, payloads);
    const insertMs = performance.now() - t0;
    for (;;) {
      const { rows } = await pool.query<{ sent: number }>('SELECT count(*)::int AS sent FROM outbox WHERE topic = $1 AND sent_at IS NOT NULL', [topic]);
      if (rows[0]!.sent >= events) break;
      if (performance.now() - t0 > 300_000) throw new Error(`relay did not finish: ${rows[0]!.sent}/${events} sent\n${relayProcess.output()}`);
      await sleep(20);
    }
    const relayMs = performance.now() - t0;
    await relayProcess.stop();
    const relayBatches = Math.ceil(events / batchSize);
    log(`outbox relay           ${rate(events, relayMs).toLocaleString('en')} rows/s insert → acked (${(relayMs / 1000).toFixed(2)} s; the inserts took ${(insertMs / 1000).toFixed(2)} s)`);

    // --- outbox relay draining a backlog: the relay's own capacity, without the inserts ------------
    await insertRows(pool, topic, payloads);
    const producer = createProducer(kafka);
    await producer.connect();
    let drained = 0;
    let allDrained: () => void = () => undefined;
    const finishedDrain = new Promise<void>((resolve) => (allDrained = resolve));
    const relay = createOutboxRelay({
      pool,
      databaseUrl: config.database.url,
      producer,
      codecFor: () => codec,
      topics: [topic],
      logger,
      batchSize,
      onBatch: ({ rows }) => {
        drained += rows;
        if (drained >= events) allDrained();
      },
    });
    t0 = performance.now();
    await relay.start();
    await finishedDrain;
    const drainMs = performance.now() - t0;
    await relay.close();
    await producer.disconnect();
    log(`outbox relay (backlog) ${rate(events, drainMs).toLocaleString('en')} rows/s claim → acked → marked (${(drainMs / 1000).toFixed(2)} s)`);

    // --- direct publishApplication ---------------------------------------------------------------
    const publisher = createApplicationPublisher({ kafka: config.kafka, registryUrl: config.schemaRegistry.url, topic, pool, logger });
    await publisher.start();
    const inputs = Array.from({ length: directEvents }, () => generate.next());
    let next = 0;
    t0 = performance.now();
    await Promise.all(
      Array.from({ length: Math.min(concurrency, directEvents) }, async () => {
        while (next < inputs.length) await publisher.publishApplication(inputs[next++]!);
      }),
    );
    const directMs = performance.now() - t0;
    await publisher.close();
    log(`direct publish         ${rate(directEvents, directMs).toLocaleString('en')} events/s (${directEvents} applications, ${concurrency} in flight, ${(directMs / 1000).toFixed(2)} s)`);

    const rawRate = rate(events, rawMs);
    const result: PublishBenchResult = {
      bench: 'publish',
      events,
      batchSize,
      partitions: config.topics.partitions,
      raw: { eventsPerSec: rawRate, ms: Math.round(rawMs) },
      relay: { rowsPerSec: rate(events, relayMs), ms: Math.round(relayMs), ratioToRaw: +(rate(events, relayMs) / rawRate).toFixed(3), batches: relayBatches, insertMs: Math.round(insertMs) },
      relayBacklog: { rowsPerSec: rate(events, drainMs), ms: Math.round(drainMs), ratioToRaw: +(rate(events, drainMs) / rawRate).toFixed(3) },
      direct: { eventsPerSec: rate(directEvents, directMs), ms: Math.round(directMs), ratioToRaw: +(rate(directEvents, directMs) / rawRate).toFixed(3), events: directEvents, concurrency },
    };
    log(`relay / raw = ${(result.relay.ratioToRaw * 100).toFixed(0)} % (insert → acked), ${(result.relayBacklog.ratioToRaw * 100).toFixed(0)} % (backlog); direct / raw = ${(result.direct.ratioToRaw * 100).toFixed(0)} %`);
    return result;
  } finally {
    for (const fn of cleanups.reverse()) await fn().catch(() => undefined);
    await pool.end();
  }
}

/** Insert the events as outbox rows the way many backend transactions would: chunks of 1,000 over 4 connections. */
async function insertRows(pool: Pool, topic: string, payloads: ApplicationSubmitted[]): Promise<void> {
  const chunk = 1_000;
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next; i < payloads.length; i = next) {
      next += chunk;
      const slice = payloads.slice(i, i + chunk);
      await pool.query(
        `INSERT INTO outbox (event_id, topic, key, payload)
         SELECT e.event_id, $1, e.key, e.payload FROM unnest($2::uuid[], $3::text[], $4::jsonb[]) AS e(event_id, key, payload)`,
        [topic, slice.map((e) => e.eventId), slice.map((e) => e.applicationId), slice.map((e) => JSON.stringify(e))],
      );
    }
  };
  await Promise.all([1, 2, 3, 4].map(worker));
}

/** `npm run outbox-relay` on the bench topic as a child process; resolves once it is relaying. */
async function startRelayProcess(config: Config, batchSize: number): Promise<{ stop(): Promise<void>; output(): string }> {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', 'producers/outbox/cli.ts', '--batch-size', String(batchSize), '--poll-interval-ms', '200'], {
    cwd: root,
    env: childEnv({ ...envFromConfig(config), LOG_LEVEL: 'info' }),
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
    stop() {
      stopping ??= (async () => {
        if (child.exitCode === null) child.kill('SIGTERM');
        await exited;
      })();
      return stopping;
    },
  };
}

function positiveInt(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new UsageError(`--${name} must be a whole number ≥ 1, got "${value}"`);
  return Number(value);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await runMain({
    name: 'bench:publish',
    usage: `Usage: npm run bench:publish -- [--events N] [--batch-size N] [--direct-events N] [--concurrency N]

Outbox relay and direct publish throughput beside a raw kafkajs producer (same bytes, same run).
Uses a topic and company of its own and removes them afterwards. The last line is JSON.`,
    options: {
      events: { type: 'string' },
      'batch-size': { type: 'string' },
      'direct-events': { type: 'string' },
      concurrency: { type: 'string' },
    },
    async run({ config, values }) {
      const result = await runPublishBench({
        config,
        events: positiveInt('events', values.events),
        directEvents: positiveInt('direct-events', values['direct-events']),
        batchSize: positiveInt('batch-size', values['batch-size']),
        concurrency: positiveInt('concurrency', values.concurrency),
        log: (line) => console.log(line),
      });
      console.log(JSON.stringify(result));
    },
  });
}
