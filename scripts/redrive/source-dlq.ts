/**
 * Reading the DLQ topic for a redrive without disturbing anyone.
 *
 * The range is fixed before reading: per partition from the low watermark (or the first offset at
 * or after --since, or --offset's start) to the high watermark captured at start (or --offset's
 * end), so a redrive never chases its own output or new dead letters.
 *
 * The port reads only through a consumer group, so the run uses a group of its own
 * (`ats-relay.redrive.<run id>`) that never commits (seeks resolve locally). The position of each partition is kept here and
 * sought again after any rejoin; the empty group is deleted at the end. Other groups' committed
 * offsets on the DLQ (the S3 sink, the alerts) are never touched.
 */
import type { HeaderMap } from '../../lib/headers.ts';
import { readHeaders } from '../../lib/headers.ts';
import { kafkaError, withAdmin, type GroupConsumer, type KafkaClient } from '../../lib/kafka/index.ts';
import type { Logger } from '../../lib/logger.ts';
import { existingTopics } from '../../lib/topics.ts';
import { offsetRangeSelected, partitionSelected, type RedriveFilters } from './filters.ts';
import type { DeadLetter, RecordSource, SourceScan } from './source.ts';

export interface DlqSourceOptions {
  kafka: KafkaClient;
  topic: string;
  filters: RedriveFilters;
  /** The throwaway group's id; unique per run. */
  groupId: string;
  logger: Logger;
  /** Give up when a partition yields nothing for this long although its range is not read (default 60 s). */
  stallTimeoutMs?: number;
}

/** Offsets [start, end) of one partition to read. */
export interface PartitionRange {
  partition: number;
  start: number;
  end: number;
}

export function createDlqSource(opts: DlqSourceOptions): RecordSource & { ranges(): PartitionRange[] } {
  const { kafka, topic, filters, logger } = opts;
  const stallTimeoutMs = opts.stallTimeoutMs ?? 60_000;
  let ranges: PartitionRange[] = [];
  let consumer: GroupConsumer | undefined;

  async function plan(): Promise<SourceScan> {
    ranges = await withAdmin(kafka, async (admin) => {
      if (!(await existingTopics(admin, [topic])).has(topic)) throw new Error(`DLQ topic ${topic} does not exist (check TOPIC_APPLICATIONS)`);
      const watermarks = await admin.fetchTopicOffsets(topic);
      const bySince = filters.since === undefined ? undefined : await admin.fetchTopicOffsetsByTimestamp(topic, filters.since);
      return watermarks
        .filter((w) => partitionSelected(filters, w.partition))
        .map((w) => {
          let start = Number(w.low);
          let end = Number(w.high);
          // The first offset whose timestamp is ≥ --since: every earlier record is older.
          const sinceOffset = bySince?.find((s) => s.partition === w.partition)?.offset;
          if (sinceOffset !== undefined) start = Math.max(start, Number(sinceOffset));
          if (filters.offsets?.from !== undefined) start = Math.max(start, filters.offsets.from);
          if (filters.offsets?.to !== undefined) end = Math.min(end, filters.offsets.to + 1);
          return { partition: w.partition, start, end: Math.max(start, end) };
        })
        .filter((r) => r.end > r.start && offsetRangeSelected(filters, r.start, r.end - 1))
        .sort((a, b) => a.partition - b.partition);
    });
    const missing = filters.partitions.filter((p) => !ranges.some((r) => r.partition === p));
    if (missing.length) logger.debug({ partitions: missing }, 'partitions with nothing to read in range');
    return { total: ranges.reduce((n, r) => n + (r.end - r.start), 0) };
  }

  async function read(each: (record: DeadLetter) => Promise<void>, signal: AbortSignal): Promise<void> {
    if (ranges.length === 0 || signal.aborted) return;
    const position = new Map(ranges.map((r) => [r.partition, r.start]));
    const end = new Map(ranges.map((r) => [r.partition, r.end]));
    const open = new Set(ranges.map((r) => r.partition));
    const c = kafka.consumer({
      groupId: opts.groupId,
      // A run is one member of its own group: nobody to rebalance with, so long waits between
      // heartbeats (a slow --rate) are the only risk; heartbeats go out after every record.
      sessionTimeoutMs: 60_000,
      rebalanceTimeoutMs: 60_000,
    });
    consumer = c;

    let finish!: () => void;
    let fail!: (err: unknown) => void;
    const done = new Promise<void>((resolve, reject) => {
      finish = resolve;
      fail = reject;
    });
    void done.catch(() => undefined); // awaited below; a failure before that is not unhandled
    let lastProgress = Date.now();
    const seekAll = (): void => {
      for (const [partition, offset] of position) if (open.has(partition)) c.seek({ topic, partition, offset: String(offset) });
    };
    const closePartition = (partition: number): void => {
      open.delete(partition);
      c.pause([{ topic, partitions: [partition] }]);
      if (open.size === 0) finish();
    };
    const onAbort = (): void => finish();
    signal.addEventListener('abort', onAbort, { once: true });
    // After a (re)join the group would start from the beginning (no committed offsets): put every
    // partition back where this run is.
    const onJoin = (): void => {
      try {
        seekAll();
        const idle = [...end.keys()].filter((p) => !open.has(p));
        if (idle.length) c.pause([{ topic, partitions: idle }]);
      } catch (err) {
        fail(err);
      }
    };
    const stall = setInterval(() => {
      if (Date.now() - lastProgress > stallTimeoutMs) {
        fail(new Error(`reading ${topic} stalled: no record for ${Math.round(stallTimeoutMs / 1000)} s at partitions ${[...open].map((p) => `${p}@${position.get(p)}`).join(', ')}`));
      }
    }, 1_000);

    try {
      await c.run({
        topics: [topic],
        onAssigned: onJoin,
        // The client restarts itself after a retriable crash (the join puts positions back); only a
        // crash it gives up on ends the run.
        maxRestarts: Number.POSITIVE_INFINITY,
        onCrash: (err, fatal) => {
          if (fatal) fail(err);
        },
        onBatch: async (batch) => {
          const partition = batch.partition;
          if (!open.has(partition)) return;
          const stop = end.get(partition)!;
          for (const m of batch.records) {
            if (signal.aborted || batch.isStale()) return;
            const offset = Number(m.offset);
            // Before the range (the first fetch may run before the seek lands) or already handled.
            if (offset < position.get(partition)!) continue;
            if (offset >= stop) break;
            const headers: HeaderMap = readHeaders(m.headers);
            await each({
              topic,
              partition,
              offset: m.offset,
              timestamp: m.timestamp,
              key: m.key,
              value: m.value,
              headers,
              rawHeaders: m.headers,
            });
            position.set(partition, offset + 1);
            lastProgress = Date.now();
            await batch.heartbeat();
          }
          // Control records and gaps count as read: the batch says how far the log went.
          const last = Number(batch.lastOffset());
          position.set(partition, Math.max(position.get(partition)!, Math.min(last + 1, stop)));
          if (position.get(partition)! >= stop) closePartition(partition);
        },
      });
      seekAll();
      await done;
    } catch (err) {
      throw kafkaError(err, `reading ${topic}`, { topic });
    } finally {
      clearInterval(stall);
      signal.removeEventListener('abort', onAbort);
      await close();
    }
  }

  async function close(): Promise<void> {
    const c = consumer;
    consumer = undefined;
    if (!c) return;
    await c.disconnect().catch((err: unknown) => logger.warn({ err }, 'disconnecting the redrive reader failed'));
    // The group never committed anything; remove it so it does not linger in listings.
    await withAdmin(kafka, (admin) => admin.deleteGroups([opts.groupId])).catch((err: unknown) =>
      logger.debug({ err, groupId: opts.groupId }, 'could not delete the redrive reader group (it holds no offsets and expires on its own)'),
    );
  }

  return { label: `dlq:${topic}`, plan, read, close, ranges: () => ranges };
}
