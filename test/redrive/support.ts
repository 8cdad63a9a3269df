/**
 * A DLQ of the test's own (unique topics, unique S3 prefix), seeded with dead letters that carry the
 * dispatcher's header contract, and helpers to run `npm run redrive` as an operator would (a child
 * process) and read what it produced, byte for byte.
 */
import { startPipelineBase } from '../support/pipeline-base.ts';
import { sampleEvent } from '../support/events.ts';
import { readTopic, type RawRecord } from '../support/topic-reader.ts';
import { randomUUID } from 'node:crypto';
import type { ApplicationSubmitted } from '../../lib/application.ts';
import { envFromConfig, type Config } from '../../lib/config.ts';
import { createPool, type Pool } from '../../lib/db.ts';
import type { ErrorCode } from '../../lib/error-codes.ts';
import { failureHeaders, HEADER, type HeaderMap } from '../../lib/headers.ts';
import type { Platform } from '../../registry/integration.ts';
import { ACKS_ALL, withAdmin, type KafkaClient, type Producer } from '../../lib/kafka/index.ts';
import { createS3Client } from '../../lib/s3.ts';
import type { EventCodec } from '../../lib/serde.ts';
import type { S3Client } from '@aws-sdk/client-s3';
import { testConfig, uniqueName } from '../support/config.ts';
import { spawnTs } from '../../dev/spawn-entrypoint.ts';

export interface DeadLetterSeed {
  companyId: string;
  platform: Platform;
  code: ErrorCode;
  /** Kafka timestamp on the DLQ (default now). */
  timestamp?: number;
  /** Previous redrives (header ats-redrive-count). */
  redriveCount?: number;
  /** Value bytes instead of the encoded event (an undecodable dead letter). */
  rawValue?: Buffer;
  partition?: number;
}

export interface Seeded {
  seed: DeadLetterSeed;
  event: ApplicationSubmitted;
  key: string;
  value: Buffer;
  headers: HeaderMap;
}

export interface RedriveStack {
  config: Config;
  kafka: KafkaClient;
  producer: Producer;
  codec: EventCodec;
  pool: Pool;
  s3: S3Client;
  event(companyId: string, platform: Platform): ApplicationSubmitted;
  /** Produce dead letters to the DLQ, in order; resolves with what was sent. */
  seed(items: DeadLetterSeed[]): Promise<Seeded[]>;
  /** Run `npm run redrive -- <args>` against this stack. */
  cli(args: string[]): Promise<CliResult>;
  close(): Promise<void>;
}

export interface CliResult {
  code: number | string;
  output: string;
  /** The run's redrive id, from the report. */
  id: string | undefined;
}

export async function startRedriveStack(): Promise<RedriveStack> {
  const config = testConfig({
    TOPIC_APPLICATIONS: uniqueName('apps'),
    TOPIC_PARTITIONS: '3',
    RETRY_TIERS: 'retry-a:1000,retry-b:2000',
    S3_PREFIX: uniqueName('redrive-test'),
  });
  const { kafka, producer, codec, close: closeBase } = await startPipelineBase(config);
  const pool = createPool(config.database, { max: 2 });
  const s3 = createS3Client(config.s3);

  const event = (companyId: string, platform: Platform): ApplicationSubmitted => sampleEvent({ companyId, platform });

  return {
    config,
    kafka,
    producer,
    codec,
    pool,
    s3,
    event,
    async seed(items) {
      const now = Date.now();
      const seeded = await Promise.all(
        items.map(async (seed, i): Promise<Seeded> => {
          const ev = event(seed.companyId, seed.platform);
          const headers = failureHeaders(
            { topic: config.topics.applications, partition: 0, offset: String(i), timestamp: String((seed.timestamp ?? now) - 60_000), headers: { 'trace-id': randomUUID() } },
            { code: seed.code, message: `${seed.code}: the ATS said no`, status: seed.code === 'auth_failed' ? 401 : 503 },
            { tryCount: 3, failedBy: 'ats-relay.retry-b', now: (seed.timestamp ?? now) - 30_000 },
          );
          if (seed.redriveCount !== undefined) headers[HEADER.redriveCount] = String(seed.redriveCount);
          return { seed, event: ev, key: ev.applicationId, value: seed.rawValue ?? (await codec.encode(ev)), headers };
        }),
      );
      await producer.send({
        topic: config.topics.dlq,
        acks: ACKS_ALL,
        messages: seeded.map((s) => ({
          key: s.key,
          value: s.value,
          headers: s.headers,
          timestamp: String(s.seed.timestamp ?? now),
          ...(s.seed.partition !== undefined ? { partition: s.seed.partition } : {}),
        })),
      });
      return seeded;
    },
    async cli(args) {
      const p = spawnTs('scripts/redrive/cli.ts', args, { ...envFromConfig(config), LOG_LEVEL: 'warn' });
      const code = await p.exited;
      const output = p.output();
      return { code, output, id: /redrive id\s+([0-9a-f-]{36})/.exec(output)?.[1] };
    },
    async close() {
      await closeBase();
      await pool.end();
      s3.destroy();
    },
  };
}

/** Records of one redrive run on `topic`. */
export async function redriven(kafka: KafkaClient, topic: string, redriveId: string): Promise<RawRecord[]> {
  return (await readTopic(kafka, topic)).filter((r) => r.headers[HEADER.redriveId] === redriveId);
}

export async function highWatermarks(kafka: KafkaClient, topic: string): Promise<string> {
  const offsets = await withAdmin(kafka, (admin) => admin.fetchTopicOffsets(topic));
  return offsets
    .sort((a, b) => a.partition - b.partition)
    .map((o) => `${o.partition}:${o.high}`)
    .join(',');
}
