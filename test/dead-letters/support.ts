/**
 * A dead-letter pipeline of the test's own: unique topics (so a unique DLQ), a unique S3 prefix and
 * mail recipient, a producer that writes dead letters carrying the dispatcher's header contract, and
 * helpers to read the archive, committed offsets and the mailbox back.
 */
import { startPipelineBase } from '../support/pipeline-base.ts';
import { sampleEvent } from '../support/events.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { ApplicationSubmitted } from '../../lib/application.ts';
import type { Config } from '../../lib/config.ts';
import { envFromConfig } from '../../lib/config.ts';
import { parseArchiveKey, parseArchiveObject, type ArchivedRecord, type ArchiveKeyParts } from '../../lib/dlq-archive.ts';
import { isRetriable, type ErrorCode } from '../../lib/error-codes.ts';
import { failureHeaders } from '../../lib/headers.ts';
import { ACKS_ALL, withAdmin, type KafkaClient, type OutboundRecord, type Producer } from '../../lib/kafka/index.ts';
import type { Logger } from '../../lib/logger.ts';
import { childEnv } from '../../dev/process-env.ts';
import type { Platform } from '../../registry/integration.ts';
import { createS3Client } from '../../lib/s3.ts';
import type { EventCodec } from '../../lib/serde.ts';
import { testConfig, uniqueName } from '../support/config.ts';

export interface DeadLetterStack {
  config: Config;
  logger: Logger;
  kafka: KafkaClient;
  producer: Producer;
  codec: EventCodec;
  s3: S3Client;
  event(companyId: string, platform?: Platform): ApplicationSubmitted;
  /** Dead letters as the dispatcher writes them (value = the encoded event, failure headers). */
  deadLetters(items: DeadLetterSpec[]): Promise<OutboundRecord[]>;
  publish(messages: OutboundRecord[]): Promise<void>;
  close(): Promise<void>;
}

export interface DeadLetterSpec {
  event: ApplicationSubmitted;
  code: ErrorCode;
  message?: string;
  status?: number;
}

export async function startDeadLetterStack(overrides: Record<string, string> = {}): Promise<DeadLetterStack> {
  const config = testConfig({
    TOPIC_APPLICATIONS: uniqueName('apps'),
    TOPIC_PARTITIONS: '3',
    S3_PREFIX: uniqueName('dlq-test'),
    ALERT_EMAIL_TO: `${uniqueName('ops')}@localhost`,
    SHUTDOWN_TIMEOUT_MS: '15000',
    ...overrides,
  });
  const { logger, kafka, producer, codec, close: closeBase } = await startPipelineBase(config);
  const s3 = createS3Client(config.s3);
  return {
    config,
    logger,
    kafka,
    producer,
    codec,
    s3,
    event: (companyId, platform = 'greenhouse') => sampleEvent({ companyId, platform }),
    async deadLetters(items) {
      const t = Date.now();
      return Promise.all(
        items.map(async (item, i) => {
          const headers = failureHeaders(
            { topic: config.topics.applications, partition: 0, offset: String(i), timestamp: String(t - 60_000), headers: { 'trace-id': randomUUID() } },
            { code: item.code, message: item.message ?? `${item.code}: the ATS said no`, status: item.status },
            // As the router writes them: a final answer at the first try, a retriable one after the ladder.
            isRetriable(item.code)
              ? { tryCount: 4, failedBy: 'ats-relay.retry-5m', now: t - 30_000, deadLetterReason: 'retries_exhausted' }
              : { tryCount: 1, failedBy: 'ats-relay.dispatcher', now: t - 30_000, deadLetterReason: 'non_retriable' },
          );
          return { key: item.event.applicationId, value: await codec.encode(item.event), headers };
        }),
      );
    },
    async publish(messages) {
      // Records of one key share a partition's record batch; 500 × ~1 KB stays under the broker's
      // 1 MB message.max.bytes whatever the mix.
      for (let i = 0; i < messages.length; i += 500) {
        await producer.send({ topic: config.topics.dlq, acks: ACKS_ALL, messages: messages.slice(i, i + 500) });
      }
    },
    async close() {
      await closeBase();
      s3.destroy();
    },
  };
}

export interface ArchiveObject {
  key: string;
  parts: ArchiveKeyParts;
  records: ArchivedRecord[];
  body: Buffer;
}

/** Every archive object under the config's prefix, parsed. */
export async function readArchive(s3: S3Client, config: Config): Promise<ArchiveObject[]> {
  const out: ArchiveObject[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: config.s3.bucket, Prefix: `${config.s3.prefix}/`, ...(token ? { ContinuationToken: token } : {}) }));
    for (const obj of page.Contents ?? []) {
      const got = await s3.send(new GetObjectCommand({ Bucket: config.s3.bucket, Key: obj.Key! }));
      const body = Buffer.from(await got.Body!.transformToByteArray());
      out.push({ key: obj.Key!, parts: parseArchiveKey(obj.Key!)!, records: parseArchiveObject(body), body });
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return out;
}

/** Committed offsets of a group on a topic, by partition (-1 = none). */
export async function committedOffsets(kafka: KafkaClient, groupId: string, topic: string): Promise<Map<number, number>> {
  const [t] = await withAdmin(kafka, (admin) => admin.fetchOffsets(groupId, [topic]));
  return new Map((t?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
}

export { freePort } from '../../dev/stack/processes.ts';

/** `ats-relay consume --role <role>` as a child process with the config's environment. */
export function spawnConsumer(config: Config, role: string, extraEnv: Record<string, string> = {}, args: string[] = []): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'consumers/cli.ts', '--role', role, ...args], {
    env: childEnv({ ...envFromConfig(config), HTTP_PORT: '0', ...extraEnv }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.resume();
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  child.once('exit', (code, signal) => {
    if (code && code !== 0) process.stderr.write(`[${role}] exited ${code} ${signal ?? ''}\n${stderr}\n`);
  });
  return child;
}

export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

export { waitFor } from '../support/wait.ts';

/**
 * Wait until just after an alerts window boundary (windows are aligned to wall-clock multiples), so a
 * burst published now lands in one window and makes one digest.
 */
export async function startOfWindow(windowMs: number): Promise<void> {
  const now = Date.now();
  await new Promise((r) => setTimeout(r, Math.floor(now / windowMs) * windowMs + windowMs - now + 50));
}
