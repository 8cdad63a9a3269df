/**
 * The DLQ → S3 sink (group `ats-relay.dlq-s3`): archives every dead letter into gzipped JSON-lines
 * objects (lib/dlq-archive.ts), one partition and contiguous offset range per object, and commits a
 * partition's offsets only once the object holding them is stored. See batcher.ts for the invariant
 * that keeps every offset in exactly one object across crashes.
 *
 * - `eachBatch` only buffers and returns (heartbeats keep flowing); writes happen outside it, one
 *   at a time per partition, driven by the buffer limits and a timer for the age limit (kafkajs calls
 *   eachBatch only when data arrives).
 * - S3 down: the write is retried with backoff, nothing is committed, and a partition whose next
 *   batch is full is paused, so memory stays bounded (≈ 2 batches per owned partition).
 * - Rebalance: buffers of partitions no longer owned are dropped (the new owner re-reads them).
 * - close(): stop fetching, write what is buffered (bounded by drainTimeoutMs), commit, leave.
 */
import { sleep as abortableSleep } from '../../lib/sleep.ts';
import { DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Config } from '../../lib/config.ts';
import {
  archiveDate,
  archiveKey,
  archiveKeyFirstOffsetPrefix,
  buildArchiveObject,
  encodeArchiveLine,
  type Decoded,
  type DeadLetterRecord,
} from '../../lib/dlq-archive.ts';
import { assignedKeys, createGroupConsumer, createKafka, fromTpKey, runManualCommit, tpKey, crashSignal, type Consumer, type Kafka } from '../../lib/kafka.ts';
import type { Logger } from '../../lib/logger.ts';
import { createS3Client } from '../../lib/s3.ts';
import { createEventCodec, type EventCodec } from '../../lib/serde.ts';
import { createDeadLetterMetrics, type DeadLetterMetrics } from '../dead-letter-metrics.ts';
import { PartitionBatcher, type Batch } from './batcher.ts';
import { sinkOptions, type SinkOptions } from './options.ts';

export { DEFAULT_GROUP_ID } from './options.ts';

export interface DlqS3SinkDeps {
  config: Config;
  logger: Logger;
  options?: Partial<SinkOptions>;
  metrics?: DeadLetterMetrics;
  /** Default: built from config.s3 (lib/s3.ts). */
  s3?: S3Client;
  kafka?: Kafka;
  codec?: EventCodec;
  now?: () => number;
}

export interface DlqS3Sink {
  readonly groupId: string;
  readonly metrics: DeadLetterMetrics;
  readonly ready: boolean;
  /** Rejects once the Kafka client gave up for good: close and exit non-zero (a supervisor restarts the process). */
  readonly failed: Promise<never>;
  start(): Promise<void>;
  close(): Promise<void>;
}


/** Decode for the archive: the event as JSON, or null plus the reason. Registry trouble throws (retried). */
async function decodeForArchive(codec: EventCodec, value: Buffer | null): Promise<Decoded> {
  if (value === null) return { value: null, decodeError: 'no value (tombstone)' };
  try {
    return { value: await codec.decode(value) };
  } catch (err) {
    if ((err as { retriable?: boolean }).retriable) throw err;
    return { value: null, decodeError: (err as Error).message };
  }
}

export function createDlqS3Sink(deps: DlqS3SinkDeps): DlqS3Sink {
  const { config } = deps;
  const opts = sinkOptions(config, deps.options);
  const now = deps.now ?? Date.now;
  const logger = deps.logger.child({ component: 'dlq-s3-sink', group: opts.groupId, topic: opts.topic });
  const metrics = deps.metrics ?? createDeadLetterMetrics('dlq-s3');
  const s3 = deps.s3 ?? createS3Client(config.s3);
  const ownsS3 = deps.s3 === undefined;
  const kafka = deps.kafka ?? createKafka(config.kafka, logger, { clientIdSuffix: opts.groupId });
  const codec = deps.codec ?? createEventCodec({ registryUrl: config.schemaRegistry.url, topic: config.topics.applications });
  const consumer: Consumer = createGroupConsumer(kafka, { groupId: opts.groupId, sessionTimeoutMs: opts.sessionTimeoutMs, maxWaitTimeMs: 500 });

  const batchers = new Map<string, PartitionBatcher>();
  /** The write in progress per partition; kept across a revoke so a re-assignment waits for it. */
  const writes = new Map<string, Promise<void>>();
  const paused = new Set<string>();
  const abort = new AbortController();
  let assigned = new Set<string>();
  let running = false;
  let joined = false;
  const crash = crashSignal();
  let tick: NodeJS.Timeout | undefined;
  /** Set first thing in close() (the closing promise is only assigned after its synchronous part ran). */
  let stopping = false;
  let closing: Promise<void> | undefined;

  const sleep = (ms: number): Promise<void> => abortableSleep(ms, abort.signal);

  function updateBuffered(): void {
    let n = 0;
    for (const b of batchers.values()) n += b.buffered;
    metrics.bufferedRecords.set(n);
  }

  function pause(topic: string, partition: number): void {
    paused.add(tpKey(topic, partition));
    consumer.pause([{ topic, partitions: [partition] }]);
  }

  function resumeIfRoom(b: PartitionBatcher): void {
    const key = tpKey(b.topic, b.partition);
    if (!paused.has(key) || b.full || stopping || !assigned.has(key)) return;
    paused.delete(key);
    consumer.resume([{ topic: b.topic, partitions: [b.partition] }]);
  }

  /** Start writing the partition's next batch if one is ready and nothing is being written. */
  function kick(key: string): void {
    const b = batchers.get(key);
    if (!b || writes.has(key)) return;
    const batch = b.seal(now(), stopping);
    if (!batch) return;
    const write = writeBatch(b, batch).finally(() => {
      writes.delete(key);
      if (batchers.get(key) !== b) return;
      b.written(batch);
      updateBuffered();
      resumeIfRoom(b);
      kick(key);
    });
    writes.set(key, write);
  }

  async function render(batch: Batch): Promise<Buffer> {
    const lines: string[] = [];
    for (const record of batch.records) {
      const decoded = await decodeForArchive(codec, record.value);
      if (decoded.value === null) metrics.decodeFailures.inc();
      lines.push(encodeArchiveLine(record, decoded));
    }
    return buildArchiveObject(lines);
  }

  /** Delete every object other than `keep` that starts at the batch's first offset (leftovers of a crash). */
  async function removeStale(prefix: string, keep: string): Promise<number> {
    let removed = 0;
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: opts.bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }));
      for (const obj of page.Contents ?? []) {
        if (!obj.Key || obj.Key === keep) continue;
        await s3.send(new DeleteObjectCommand({ Bucket: opts.bucket, Key: obj.Key }));
        removed++;
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return removed;
  }

  /** Store the batch, then commit its offsets; retried with backoff until done, revoked or aborted. */
  async function writeBatch(b: PartitionBatcher, batch: Batch): Promise<void> {
    const key = tpKey(batch.topic, batch.partition);
    const first = batch.records[0]!;
    const last = batch.records[batch.records.length - 1]!;
    const parts = { prefix: opts.prefix, topic: batch.topic, date: archiveDate(first.timestamp), partition: batch.partition, firstOffset: first.offset };
    const objectKey = archiveKey({ ...parts, lastOffset: last.offset });
    const log = logger.child({ partition: batch.partition, firstOffset: first.offset, lastOffset: last.offset });
    let stored = false;
    let failures = 0;
    let delay = opts.initialBackoffMs;
    let operation = 'put';
    for (;;) {
      if (batchers.get(key) !== b || abort.signal.aborted) {
        log.info('partition revoked or shutting down: batch left uncommitted (it is re-read and rewritten)');
        return;
      }
      try {
        if (!stored) {
          operation = 'render';
          const body = await render(batch);
          operation = 'put';
          await s3.send(
            new PutObjectCommand({
              Bucket: opts.bucket,
              Key: objectKey,
              Body: body,
              ContentType: 'application/gzip',
              Metadata: { 'record-count': String(batch.records.length), 'first-offset': first.offset, 'last-offset': last.offset },
            }),
          );
          operation = 'cleanup';
          const removed = await removeStale(archiveKeyFirstOffsetPrefix(parts), objectKey);
          if (removed > 0) {
            metrics.staleObjectsRemoved.inc(removed);
            log.warn({ removed }, 'removed uncommitted objects of an earlier run that started at the same offset');
          }
          stored = true;
          metrics.archivedObjects.inc();
          metrics.archivedBytes.inc(body.length);
        }
        operation = 'commit';
        await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: String(Number(last.offset) + 1) }]);
        metrics.archivedRecords.inc(batch.records.length);
        log.debug({ key: objectKey, records: batch.records.length }, 'archived and committed');
        return;
      } catch (err) {
        failures++;
        if (operation === 'commit') metrics.commitFailures.inc();
        else if (operation !== 'render') metrics.s3Failures.inc({ operation });
        // The first failure and every 10th after it at warn: an outage is visible without flooding the log.
        log[failures === 1 || failures % 10 === 0 ? 'warn' : 'debug'](
          { err, operation, failures, retryInMs: delay },
          stored ? 'offset commit failed; retrying' : 'could not archive the batch; retrying, offsets stay uncommitted',
        );
        await sleep(delay);
        delay = Math.min(delay * 2, opts.maxBackoffMs);
      }
    }
  }

  function onJoin(memberAssignment: Record<string, number[]>): void {
    joined = true;
    const next = assignedKeys(memberAssignment);
    for (const key of [...batchers.keys()]) {
      if (!next.has(key)) {
        batchers.delete(key); // dropped: the new owner re-reads these records from the committed offset
        paused.delete(key);
      }
    }
    for (const key of next) {
      if (batchers.has(key)) continue;
      const { topic, partition } = fromTpKey(key);
      // A fresh partition starts with fetching on, even if an earlier ownership left it paused.
      paused.delete(key);
      consumer.resume([{ topic, partitions: [partition] }]);
    }
    assigned = next;
    updateBuffered();
    logger.info({ assignment: memberAssignment }, 'joined consumer group');
  }

  return {
    groupId: opts.groupId,
    metrics,
    failed: crash.failed,
    get ready() {
      return running && joined;
    },

    async start() {
      running = true;
      await runManualCommit(consumer, {
        topics: [opts.topic],
        logger,
        onJoin,
        onCrash: (err, fatal) => {
          joined = false; // until the client rejoins, or for good
          if (fatal) crash.fail(err);
        },
        eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
          const { topic, partition } = batch;
          const key = tpKey(topic, partition);
          let b = batchers.get(key);
          if (!b) {
            b = new PartitionBatcher(topic, partition, opts);
            batchers.set(key, b);
          }
          for (const message of batch.messages) {
            if (!isRunning() || isStale() || stopping) break;
            const record: DeadLetterRecord = {
              topic,
              partition,
              offset: message.offset,
              timestamp: message.timestamp,
              key: message.key,
              value: message.value,
              headers: message.headers ?? {},
            };
            let result = b.accept(record, now());
            if (result === 'full') {
              kick(key); // seals the full batch if no write is in progress, making room
              result = b.accept(record, now());
            }
            if (result === 'full') {
              pause(topic, partition);
              break;
            }
            resolveOffset(message.offset);
            if (b.full) kick(key);
          }
          kick(key);
          updateBuffered();
          const lastMessage = batch.messages[batch.messages.length - 1];
          if (lastMessage) metrics.lag.set({ topic, partition: String(partition) }, Math.max(0, Number(batch.highWatermark) - Number(lastMessage.offset) - 1));
          await heartbeat();
        },
      });
      tick = setInterval(() => {
        for (const key of batchers.keys()) kick(key);
      }, Math.max(50, Math.min(1_000, Math.floor(opts.maxAgeMs / 4))));
      logger.info({ bucket: opts.bucket, prefix: opts.prefix, maxRecords: opts.maxRecords, maxBytes: opts.maxBytes, maxAgeMs: opts.maxAgeMs }, 'archiving the DLQ');
    },

    close() {
      stopping = true;
      closing ??= (async () => {
        clearInterval(tick);
        if (running) {
          try {
            consumer.pause([{ topic: opts.topic }]);
          } catch {
            // not running any more
          }
        }
        // Write everything buffered (seal is forced while closing), one batch after another per partition.
        const deadline = now() + opts.drainTimeoutMs;
        for (const key of batchers.keys()) kick(key);
        while (writes.size > 0 && now() < deadline) {
          await Promise.race([Promise.race([...writes.values()]), new Promise((r) => setTimeout(r, Math.max(0, deadline - now())))]);
        }
        if (writes.size > 0) {
          logger.warn({ partitions: writes.size }, 'drain time over: leaving the rest uncommitted (re-read on restart)');
          abort.abort();
          await Promise.race([Promise.allSettled([...writes.values()]), new Promise((r) => setTimeout(r, 5_000))]);
        }
        abort.abort();
        if (running) await consumer.disconnect();
        running = false;
        if (ownsS3) s3.destroy();
        logger.info('stopped');
      })();
      return closing;
    },
  };
}
