/**
 * The consumption engine shared by the dispatcher and the retry tiers.
 *
 * - Records of one key run in order; different keys of a partition run concurrently, up to
 *   `maxInFlight` handlers per process — so partitions do not cap throughput.
 * - `eachBatch` only accepts records and returns at once, so heartbeats keep flowing however slow
 *   an ATS is. The committed offset is each partition's contiguous watermark (OffsetTracker).
 * - A partition whose buffer is full is paused (bounded memory) and resumed when it drains.
 * - `dueAt(record)` (retry tiers): a record not yet due pauses only its partition until it is; it
 *   is fetched again then, so the wait is re-derived from headers after any rebalance.
 * - A handler that throws could not make the outcome durable (Kafka or Postgres down): it is run
 *   again with backoff and its offset stays uncommitted meanwhile. Business failures never throw.
 * - A handler may answer "run me again at `retryAt`" (a short throttling wait): the record gives its
 *   in-flight slot back while it waits, so other keys (other integrations) keep the slots.
 */
import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Consumer, Kafka } from '../../lib/kafka.ts';
import { assignedKeys, crashSignal, createGroupConsumer, fromTpKey, runManualCommit, tpKey } from '../../lib/kafka.ts';
import { readHeaders, type HeaderMap } from '../../lib/headers.ts';
import type { Logger } from '../../lib/logger.ts';
import { OffsetTracker } from './offset-tracker.ts';

export interface InboundRecord {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: HeaderMap;
  timestamp: string;
}

/** What a handler answers: done (undefined), or come back at `retryAt` (epoch ms). */
export type HandleResult = void | { retryAt: number };

export interface StreamHooks {
  inFlight?(delta: number): void;
  lag?(topic: string, partition: number, lag: number): void;
  handlerRetry?(record: InboundRecord, err: unknown): void;
}

export interface StreamConsumerOptions {
  kafka: Kafka;
  groupId: string;
  topics: string[];
  logger: Logger;
  /** Handlers running at once in this process. */
  maxInFlight: number;
  /** Records held in memory across partitions before fetching pauses (default 2 × maxInFlight). */
  maxBuffered?: number;
  commitIntervalMs?: number;
  /** Time allowed at shutdown for in-flight handlers before they are aborted (and hand off). */
  drainTimeoutMs?: number;
  fromBeginning?: boolean;
  sessionTimeoutMs?: number;
  /**
   * Resolve once the record's outcome is durable, or with `{ retryAt }` to be run again then (no
   * slot held meanwhile, offset not committed); throw only if the outcome could not be made durable.
   */
  handle(record: InboundRecord, signal: AbortSignal): Promise<HandleResult>;
  /** Epoch ms before which the record must not be handled (retry tiers). */
  dueAt?(record: InboundRecord): number | undefined;
  hooks?: StreamHooks;
  now?: () => number;
}


class Semaphore {
  private waiting: Array<() => void> = [];
  private active = 0;
  constructor(private readonly limit: number) {}
  async acquire(): Promise<void> {
    if (this.active < this.limit) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }
}

export class StreamConsumer {
  private readonly consumer: Consumer;
  private readonly trackers = new Map<string, OffsetTracker>();
  private readonly keyTails = new Map<string, Promise<void>>();
  private readonly dueTimers = new Map<string, NodeJS.Timeout>();
  private readonly fullPartitions = new Set<string>();
  private readonly semaphore: Semaphore;
  private readonly abort = new AbortController();
  /** Aborted when close() starts: records waiting to run again are left uncommitted at once. */
  private readonly stopWaiting = new AbortController();
  private readonly maxBuffered: number;
  private readonly now: () => number;
  private readonly active = new Set<Promise<void>>();
  private assigned = new Set<string>();
  private commitTimer: NodeJS.Timeout | undefined;
  private committing: Promise<void> = Promise.resolve();
  private running = false;
  private joined = false;
  private closing: Promise<void> | undefined;
  private readonly crash = crashSignal();
  /** Rejects once the Kafka client gave up for good (see runManualCommit's onCrash). */
  readonly failed: Promise<never> = this.crash.failed;

  constructor(private readonly opts: StreamConsumerOptions) {
    this.semaphore = new Semaphore(opts.maxInFlight);
    // Every in-flight handler listens on the one shutdown signal.
    setMaxListeners(0, this.abort.signal);
    setMaxListeners(0, this.stopWaiting.signal);
    this.maxBuffered = opts.maxBuffered ?? Math.max(64, opts.maxInFlight * 2);
    this.now = opts.now ?? Date.now;
    this.consumer = createGroupConsumer(opts.kafka, { groupId: opts.groupId, sessionTimeoutMs: opts.sessionTimeoutMs ?? 30_000, maxWaitTimeMs: 250 });
  }

  /** True once the consumer has joined its group and is fetching. */
  get ready(): boolean {
    return this.running && this.joined;
  }

  get inFlight(): number {
    return this.active.size;
  }

  async start(): Promise<void> {
    const { consumer } = this;
    this.running = true;
    await runManualCommit(consumer, {
      topics: this.opts.topics,
      fromBeginning: this.opts.fromBeginning ?? true,
      logger: this.opts.logger.child({ group: this.opts.groupId }),
      onJoin: (assignment) => {
        this.joined = true;
        const next = assignedKeys(assignment);
        for (const key of this.trackers.keys()) if (!next.has(key)) this.trackers.delete(key);
        for (const [key, timer] of this.dueTimers) {
          if (!next.has(key)) {
            clearTimeout(timer);
            this.dueTimers.delete(key);
          }
        }
        for (const key of this.fullPartitions) if (!next.has(key)) this.fullPartitions.delete(key);
        this.assigned = next;
        this.opts.logger.info({ group: this.opts.groupId, assignment }, 'joined consumer group');
      },
      onCrash: (err, fatal) => {
        this.joined = false; // not ready until the client rejoins, or for good
        if (fatal) this.crash.fail(err);
      },
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        const { topic, partition } = batch;
        const key = tpKey(topic, partition);
        let tracker = this.trackers.get(key);
        if (!tracker) {
          tracker = new OffsetTracker();
          this.trackers.set(key, tracker);
        }
        for (const message of batch.messages) {
          if (!isRunning() || isStale() || this.closing) break;
          const offset = Number(message.offset);
          if (offset <= tracker.highest) {
            // Fetched again after a rebalance while still ours: already accepted, don't run it twice.
            resolveOffset(message.offset);
            continue;
          }
          const record: InboundRecord = {
            topic,
            partition,
            offset: message.offset,
            key: message.key,
            value: message.value,
            headers: readHeaders(message.headers),
            timestamp: message.timestamp,
          };
          const due = this.opts.dueAt?.(record);
          if (due !== undefined && due > this.now()) {
            this.pauseUntilDue(topic, partition, due);
            break;
          }
          tracker.accept(offset);
          resolveOffset(message.offset);
          this.schedule(record, tracker);
          if (this.partitionFull(tracker)) {
            this.fullPartitions.add(key);
            this.consumer.pause([{ topic, partitions: [partition] }]);
            break;
          }
        }
        const last = batch.messages[batch.messages.length - 1];
        if (last) this.opts.hooks?.lag?.(topic, partition, Math.max(0, Number(batch.highWatermark) - Number(last.offset) - 1));
        await heartbeat();
      },
    });
    this.commitTimer = setInterval(() => void this.commit(), this.opts.commitIntervalMs ?? 1_000);
  }

  /** The memory budget shared by the partitions this member owns (bounded RSS however many it gets). */
  private partitionBudget(): number {
    return Math.max(16, Math.ceil(this.maxBuffered / Math.max(1, this.assigned.size)));
  }

  /**
   * Fetching pauses when the partition's records still in memory reach its budget. Finished records
   * behind an unfinished one (a delivery waiting out a throttle) hold only an offset each, so they
   * count against a far larger bound: one slow integration must not stop a partition for the others.
   */
  private partitionFull(tracker: OffsetTracker): boolean {
    const budget = this.partitionBudget();
    return tracker.inFlight >= budget || tracker.buffered >= budget * 32;
  }

  private partitionDrained(tracker: OffsetTracker): boolean {
    const budget = this.partitionBudget();
    return tracker.inFlight <= budget / 2 && tracker.buffered <= budget * 16;
  }

  private pauseUntilDue(topic: string, partition: number, due: number): void {
    const key = tpKey(topic, partition);
    this.consumer.pause([{ topic, partitions: [partition] }]);
    clearTimeout(this.dueTimers.get(key));
    const timer = setTimeout(
      () => {
        this.dueTimers.delete(key);
        if (!this.closing && this.assigned.has(key) && !this.fullPartitions.has(key)) this.consumer.resume([{ topic, partitions: [partition] }]);
      },
      Math.max(0, due - this.now()) + 5,
    );
    this.dueTimers.set(key, timer);
  }

  private schedule(record: InboundRecord, tracker: OffsetTracker): void {
    const chainKey = `${record.topic}\u0000${record.partition}\u0000${record.key?.toString('base64') ?? `#${record.offset}`}`;
    const previous = this.keyTails.get(chainKey) ?? Promise.resolve();
    const run = previous.then(async () => {
      for (;;) {
        await this.semaphore.acquire();
        this.opts.hooks?.inFlight?.(1);
        let result: HandleResult;
        try {
          result = await this.handleUntilDurable(record);
        } finally {
          this.opts.hooks?.inFlight?.(-1);
          this.semaphore.release();
        }
        if (!result) return;
        // Waiting without a slot; at shutdown the wait ends and the record stays uncommitted.
        await sleep(Math.max(0, result.retryAt - this.now()), undefined, { signal: this.stopWaiting.signal });
      }
    });
    const tail = run.then(
      () => this.completed(record, tracker),
      () => undefined, // abandoned at shutdown: left uncommitted, replayed later
    );
    this.keyTails.set(chainKey, tail);
    this.active.add(tail);
    void tail.finally(() => {
      this.active.delete(tail);
      if (this.keyTails.get(chainKey) === tail) this.keyTails.delete(chainKey);
    });
  }

  private async handleUntilDurable(record: InboundRecord): Promise<HandleResult> {
    let delay = 500;
    for (;;) {
      try {
        return await this.opts.handle(record, this.abort.signal);
      } catch (err) {
        if (this.abort.signal.aborted) throw err;
        this.opts.hooks?.handlerRetry?.(record, err);
        this.opts.logger.error(
          { err, topic: record.topic, partition: record.partition, offset: record.offset },
          'could not make the outcome durable; retrying, offset stays uncommitted',
        );
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 30_000);
      }
    }
  }

  private completed(record: InboundRecord, tracker: OffsetTracker): void {
    tracker.complete(Number(record.offset));
    const key = tpKey(record.topic, record.partition);
    if (this.fullPartitions.has(key) && this.partitionDrained(tracker) && !this.closing) {
      this.fullPartitions.delete(key);
      if (!this.dueTimers.has(key) && this.assigned.has(key)) this.consumer.resume([{ topic: record.topic, partitions: [record.partition] }]);
    }
  }

  /** Commit every owned partition's watermark that moved. Serialised; failures retry next tick. */
  commit(): Promise<void> {
    this.committing = this.committing.then(async () => {
      const offsets: Array<{ topic: string; partition: number; offset: string }> = [];
      const moved: Array<[OffsetTracker, number]> = [];
      for (const [key, tracker] of this.trackers) {
        if (!this.assigned.has(key)) continue;
        const next = tracker.committable();
        if (next === undefined) continue;
        const { topic, partition } = fromTpKey(key);
        offsets.push({ topic, partition, offset: String(next) });
        moved.push([tracker, next]);
      }
      if (offsets.length === 0) return;
      try {
        await this.consumer.commitOffsets(offsets);
        for (const [tracker, next] of moved) tracker.committed = next;
      } catch (err) {
        this.opts.logger.warn({ err, group: this.opts.groupId }, 'offset commit failed; will retry');
      }
    });
    return this.committing;
  }

  /**
   * Graceful stop: stop fetching, let in-flight work finish (or, past the drain time, abort it so
   * handlers hand it to the next tier), commit, leave the group. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.commitTimer);
      this.stopWaiting.abort();
      for (const timer of this.dueTimers.values()) clearTimeout(timer);
      this.dueTimers.clear();
      if (this.running) {
        try {
          this.consumer.pause(this.opts.topics.map((topic) => ({ topic })));
        } catch {
          // not running any more
        }
      }
      const drain = Promise.allSettled([...this.active]);
      const drained = await Promise.race([drain.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), this.opts.drainTimeoutMs ?? 10_000))]);
      if (!drained) {
        this.opts.logger.warn({ inFlight: this.active.size }, 'drain time over: aborting in-flight deliveries (they hand off to the next tier)');
        this.abort.abort();
        await Promise.race([Promise.allSettled([...this.active]), new Promise((r) => setTimeout(r, 5_000))]);
      }
      await this.commit();
      await this.consumer.disconnect();
      this.running = false;
    })();
    return this.closing;
  }
}
