/**
 * The DLQ archive's decision: which dead letters go into which object, when an object is written,
 * and when its offsets are committed (only once it is stored). One write at a time per partition,
 * driven by the buffer limits and a timer for the age limit (a consumer hears of records only when
 * some arrive). See batcher.ts for the invariant that keeps every offset in exactly one object.
 *
 * - S3 down: the write is retried with backoff, nothing is committed, and a partition whose next
 *   batch is full is held (the runtime pauses it), so memory stays bounded (≈ 2 batches per partition).
 * - Revoked partitions: their buffers are dropped (the new owner re-reads them).
 * - Close: `flush` writes what is buffered (bounded by the deadline); the rest stays uncommitted.
 */
import { DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  archiveDate,
  archiveKey,
  archiveKeyFirstOffsetPrefix,
  buildArchiveObject,
  encodeArchiveLine,
  type Decoded,
  type DeadLetterRecord,
} from '../../lib/dlq-archive.ts';
import { tpKey } from '../../lib/kafka/index.ts';
import type { Logger } from '../../lib/logger.ts';
import { sleep as abortableSleep } from '../../lib/sleep.ts';
import type { EventCodec } from '../../lib/serde.ts';
import type { DeadLetterMetrics } from '../dead-letter-metrics.ts';
import type { ConsumerRuntime, PartitionWork } from '../runtime/runtime.ts';
import { PartitionBatcher, type Batch } from './batcher.ts';
import type { SinkOptions } from './options.ts';

/** Hold reason on the runtime: the partition's next batch is full while one is being written. */
const FULL = 'next batch full';

export interface SinkHandlerDeps {
  opts: SinkOptions;
  s3: S3Client;
  codec: EventCodec;
  metrics: DeadLetterMetrics;
  logger: Logger;
  runtime: Pick<ConsumerRuntime, 'hold' | 'release' | 'commit' | 'owns' | 'isStopping'>;
  now: () => number;
}

export interface SinkHandler extends PartitionWork {
  /** Start the age-limit timer (after the runtime started). */
  startTimer(): void;
  /** Stop retrying writes (after close). */
  stop(): void;
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

export function createSinkHandler(deps: SinkHandlerDeps): SinkHandler {
  const { opts, s3, codec, metrics, logger, runtime, now } = deps;
  const batchers = new Map<string, PartitionBatcher>();
  /** The write in progress per partition; kept across a revoke so a re-assignment waits for it. */
  const writes = new Map<string, Promise<void>>();
  const abort = new AbortController();
  let tick: NodeJS.Timeout | undefined;

  const sleep = (ms: number): Promise<void> => abortableSleep(ms, abort.signal);

  function updateBuffered(): void {
    let n = 0;
    for (const b of batchers.values()) n += b.buffered;
    metrics.bufferedRecords.set(n);
  }

  function resumeIfRoom(b: PartitionBatcher): void {
    if (!b.full) runtime.release(b.topic, b.partition, FULL);
  }

  /** Start writing the partition's next batch if one is ready and nothing is being written. */
  function kick(key: string): void {
    const b = batchers.get(key);
    if (!b || writes.has(key)) return;
    const batch = b.seal(now(), runtime.isStopping);
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
        await runtime.commit([{ topic: batch.topic, partition: batch.partition, offset: String(Number(last.offset) + 1) }]);
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

  return {
    async onBatch(batch) {
      const { topic, partition } = batch;
      const key = tpKey(topic, partition);
      let b = batchers.get(key);
      if (!b) {
        b = new PartitionBatcher(topic, partition, opts);
        batchers.set(key, b);
      }
      for (const message of batch.records) {
        if (batch.isStale()) break;
        const record: DeadLetterRecord = {
          topic,
          partition,
          offset: message.offset,
          timestamp: message.timestamp,
          key: message.key,
          value: message.value,
          headers: message.headers,
        };
        let result = b.accept(record, now());
        if (result === 'full') {
          kick(key); // seals the full batch if no write is in progress, making room
          result = b.accept(record, now());
        }
        if (result === 'full') {
          runtime.hold(topic, partition, FULL);
          break;
        }
        batch.resolveOffset(message.offset);
        if (b.full) kick(key);
      }
      kick(key);
      updateBuffered();
    },

    revoked(partitions) {
      // Dropped: the new owner re-reads these records from the committed offset.
      for (const { topic, partition } of partitions) batchers.delete(tpKey(topic, partition));
      updateBuffered();
    },

    assigned() {
      updateBuffered();
    },

    /** Write everything buffered (seal is forced while closing), one batch after another per partition. */
    async flush(deadline) {
      clearInterval(tick);
      for (const key of batchers.keys()) kick(key);
      while (writes.size > 0 && Date.now() < deadline) {
        await Promise.race([Promise.race([...writes.values()]), new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())))]);
      }
      if (writes.size > 0) {
        logger.warn({ partitions: writes.size }, 'drain time over: leaving the rest uncommitted (re-read on restart)');
        abort.abort();
        await Promise.race([Promise.allSettled([...writes.values()]), new Promise((r) => setTimeout(r, 5_000))]);
      }
    },

    startTimer() {
      tick = setInterval(() => {
        for (const key of batchers.keys()) kick(key);
      }, Math.max(50, Math.min(1_000, Math.floor(opts.maxAgeMs / 4))));
    },

    stop() {
      clearInterval(tick);
      abort.abort();
    },
  };
}
