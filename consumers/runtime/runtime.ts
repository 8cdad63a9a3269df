/**
 * The consumer runtime every ats-relay consumer runs on (the dispatcher and retry tiers, the DLQ →
 * S3 archive, the alerts): what a group member does whatever its records are for. Each consumer
 * supplies a `PartitionWork` (its handler) and keeps only its own decision.
 *
 * - Partition lifecycle: which partitions this member owns; work hears of assigned and revoked
 *   ones, and a partition that comes back starts fetching again whatever its earlier owner left.
 * - Pause/resume by reason: a partition fetches only while nothing holds it (`hold`/`release`),
 *   so "buffer full", "head record not due" and "registry down" never resume each other's pause.
 * - Due-time gate: `holdUntil` pauses one partition until a time; the record is fetched again then.
 * - Lag metric: after every batch, records behind the high watermark.
 * - Watermark commits: per owned partition an OffsetTracker; `commitWatermarks` (on a timer when
 *   `watermarkCommitIntervalMs` is set, and at close) commits each contiguous watermark that moved.
 *   Consumers that commit after their own durable write call `commit` instead.
 * - Crash: a Kafka client that gave up rejects `failed`; the owner closes and exits non-zero.
 * - Ordered close: stop fetching → drain → flush → commit → leave. Each step is guarded: one that
 *   fails is logged and the next still runs, so the member always leaves its group.
 */
import { crashSignal, tpKey, type ConsumedRecord, type GroupConsumer, type KafkaClient, type TopicPartition, type TopicPartitionOffset } from '../../lib/kafka/index.ts';
import type { Logger } from '../../lib/logger.ts';
import { OffsetTracker } from './offset-tracker.ts';

/** What an owner (consumers/cli.ts, tests) holds of a consumer built on the runtime. */
export interface RunningConsumer<Metrics> {
  readonly groupId: string;
  readonly metrics: Metrics;
  /** Joined its group and fetching: what /readyz answers. */
  readonly ready: boolean;
  /** Rejects once the Kafka client gave up for good: close and exit non-zero (a supervisor restarts the process). */
  readonly failed: Promise<never>;
  start(): Promise<void>;
  close(): Promise<void>;
}

/** One fetched batch of one partition, as the runtime hands it to work. */
export interface RuntimeBatch {
  topic: string;
  partition: number;
  records: ConsumedRecord[];
  /** Take the record as read: the next fetch starts after it. Unresolved records are fetched again. */
  resolveOffset(offset: string): void;
  heartbeat(): Promise<void>;
  /** Stop taking records: the member is closing or the partition moved. */
  isStale(): boolean;
}

/** What a consumer does with its partitions: the runtime calls these, in this order at close. */
export interface PartitionWork {
  /** Accept records; return soon (work continues outside), so heartbeats keep flowing. */
  onBatch(batch: RuntimeBatch): Promise<void>;
  /** Partitions this member now owns (after every group join, possibly none). */
  assigned?(partitions: TopicPartition[]): void;
  /** Partitions another member owns now: drop their in-memory state (the new owner re-reads). */
  revoked?(partitions: TopicPartition[]): void;
  /** Close, step 2: let work in flight finish by `deadline` (epoch ms), then abandon the rest uncommitted. */
  drain?(deadline: number): Promise<void>;
  /** Close, step 3: write out what is buffered, by `deadline`. */
  flush?(deadline: number): Promise<void>;
}

export interface ConsumerRuntimeOptions {
  kafka: KafkaClient;
  groupId: string;
  topics: readonly string[];
  /** The role's logger, its group already bound (the role's handlers log with it too, so it is bound once, there). */
  logger: Logger;
  /** Default 30 s; ats-relay roles pass KAFKA_SESSION_TIMEOUT_MS. */
  sessionTimeoutMs?: number;
  /** Longest a fetch waits for data; bounds how soon a paused or idle consumer notices news. */
  maxWaitTimeMs: number;
  /** Where a group without committed offsets starts (default: the beginning). */
  fromBeginning?: boolean;
  /** Commit watermarks this often (consumers that use `tracker`). */
  watermarkCommitIntervalMs?: number;
  /** Time close() gives drain and flush together. */
  drainTimeoutMs: number;
  onLag?(topic: string, partition: number, lag: number): void;
}

export class ConsumerRuntime {
  private readonly consumer: GroupConsumer;
  private readonly owned = new Map<string, TopicPartition>();
  private readonly trackers = new Map<string, OffsetTracker>();
  /** Why each held partition is paused; it fetches again when its last reason goes. */
  private readonly holds = new Map<string, Set<string>>();
  private readonly holdTimers = new Map<string, NodeJS.Timeout>();
  private readonly crash = crashSignal();
  private commitTimer: NodeJS.Timeout | undefined;
  private committing: Promise<void> = Promise.resolve();
  private running = false;
  private joined = false;
  private stopping = false;
  private closing: Promise<void> | undefined;
  private work: PartitionWork | undefined;
  /** Rejects once the Kafka client gave up for good: close and exit non-zero (a supervisor restarts the process). */
  readonly failed: Promise<never> = this.crash.failed;

  constructor(private readonly opts: ConsumerRuntimeOptions) {
    // Handlers return at once (work continues outside onBatch), so heartbeats keep the member alive
    // however slow the work, and the session can be short. Fetches are generous because accepting
    // records is cheap and full partitions pause themselves.
    this.consumer = opts.kafka.consumer({
      groupId: opts.groupId,
      sessionTimeoutMs: opts.sessionTimeoutMs ?? 30_000,
      maxWaitTimeMs: opts.maxWaitTimeMs,
      maxBytesPerPartition: 262_144,
    });
  }

  /** Joined the group and fetching (false after a crash until the client rejoins). */
  get ready(): boolean {
    return this.running && this.joined;
  }

  /** True once close() began: work stops taking records. */
  get isStopping(): boolean {
    return this.stopping;
  }

  /** Partitions this member owns now. */
  get ownedCount(): number {
    return this.owned.size;
  }

  owns(topic: string, partition: number): boolean {
    return this.owned.has(tpKey(topic, partition));
  }

  async start(work: PartitionWork): Promise<void> {
    this.work = work;
    this.running = true;
    await this.consumer.run({
      topics: this.opts.topics,
      fromBeginning: this.opts.fromBeginning ?? true,
      onRevoked: (partitions) => this.onRevoked(partitions),
      onAssigned: (partitions) => this.onAssigned(partitions),
      onCrash: (err, fatal) => {
        this.joined = false; // not ready until the client rejoins, or for good
        if (fatal) this.crash.fail(err);
      },
      onBatch: async (batch) => {
        await work.onBatch({
          topic: batch.topic,
          partition: batch.partition,
          records: batch.records,
          resolveOffset: (offset) => batch.resolveOffset(offset),
          heartbeat: () => batch.heartbeat(),
          isStale: () => this.stopping || batch.isStale(),
        });
        const last = batch.records[batch.records.length - 1];
        if (last) this.opts.onLag?.(batch.topic, batch.partition, Math.max(0, Number(batch.highWatermark) - Number(last.offset) - 1));
        await batch.heartbeat();
      },
    });
    if (this.opts.watermarkCommitIntervalMs) this.commitTimer = setInterval(() => void this.commitWatermarks(), this.opts.watermarkCommitIntervalMs);
  }

  private onRevoked(partitions: TopicPartition[]): void {
    for (const { topic, partition } of partitions) {
      const key = tpKey(topic, partition);
      this.owned.delete(key);
      this.trackers.delete(key);
      this.holds.delete(key);
      for (const [timerKey, timer] of this.holdTimers) {
        if (!timerKey.startsWith(`${key}\u0000`)) continue;
        clearTimeout(timer);
        this.holdTimers.delete(timerKey);
      }
    }
    this.work?.revoked?.(partitions);
  }

  private onAssigned(partitions: TopicPartition[]): void {
    this.joined = true;
    for (const tp of partitions) {
      const key = tpKey(tp.topic, tp.partition);
      this.owned.set(key, tp);
      // A fresh partition starts with fetching on, even if an earlier ownership left it paused.
      this.holds.delete(key);
      this.setFetching(tp, true);
    }
    this.work?.assigned?.(partitions);
    const assignment: Record<string, number[]> = {};
    for (const { topic, partition } of this.owned.values()) (assignment[topic] ??= []).push(partition);
    this.opts.logger.info({ assignment }, 'joined consumer group');
  }

  private setFetching({ topic, partition }: TopicPartition, on: boolean): void {
    try {
      if (on) this.consumer.resume([{ topic, partitions: [partition] }]);
      else this.consumer.pause([{ topic, partitions: [partition] }]);
    } catch (err) {
      // Only when the client is not running (closing, or crashed for good): nothing to fetch anyway.
      this.opts.logger.debug({ err, topic, partition, on }, 'could not pause/resume the partition');
    }
  }

  /** Stop fetching `partition` for `reason` until `release` with the same reason. */
  hold(topic: string, partition: number, reason: string): void {
    const key = tpKey(topic, partition);
    let reasons = this.holds.get(key);
    if (!reasons) this.holds.set(key, (reasons = new Set()));
    reasons.add(reason);
    this.setFetching({ topic, partition }, false);
  }

  /** Drop `reason`; the partition fetches again if nothing else holds it (and it is still ours). */
  release(topic: string, partition: number, reason: string): void {
    const key = tpKey(topic, partition);
    const reasons = this.holds.get(key);
    if (!reasons?.delete(reason)) return;
    if (reasons.size > 0) return;
    this.holds.delete(key);
    if (!this.stopping && this.owned.has(key)) this.setFetching({ topic, partition }, true);
  }

  isHeld(topic: string, partition: number, reason: string): boolean {
    return this.holds.get(tpKey(topic, partition))?.has(reason) ?? false;
  }

  /** The due-time gate: hold the partition for `reason` until `until` (epoch ms), then release it. */
  holdUntil(topic: string, partition: number, until: number, reason: string, now = Date.now()): void {
    const key = `${tpKey(topic, partition)}\u0000${reason}`;
    this.hold(topic, partition, reason);
    clearTimeout(this.holdTimers.get(key));
    const timer = setTimeout(
      () => {
        this.holdTimers.delete(key);
        this.release(topic, partition, reason);
      },
      Math.max(0, until - now) + 5,
    );
    this.holdTimers.set(key, timer);
  }

  /** The watermark tracker of an owned partition (made on first use, dropped when revoked). */
  tracker(topic: string, partition: number): OffsetTracker {
    const key = tpKey(topic, partition);
    let tracker = this.trackers.get(key);
    if (!tracker) {
      tracker = new OffsetTracker();
      this.trackers.set(key, tracker);
    }
    return tracker;
  }

  /** Commit `offsets` of partitions still owned (a revoked one's commit belongs to its new owner). Throws on failure. */
  commit(offsets: TopicPartitionOffset[]): Promise<void> {
    const ours = offsets.filter((o) => this.owns(o.topic, o.partition));
    const run = this.committing.then(() => (ours.length ? this.consumer.commit(ours) : undefined));
    this.committing = run.catch(() => undefined);
    return run;
  }

  /** Commit every owned partition's watermark that moved. Failures are logged and retried next time. */
  async commitWatermarks(): Promise<void> {
    const offsets: TopicPartitionOffset[] = [];
    const moved: Array<[OffsetTracker, number]> = [];
    for (const [key, tracker] of this.trackers) {
      const tp = this.owned.get(key);
      if (!tp) continue;
      const next = tracker.committable();
      if (next === undefined) continue;
      offsets.push({ ...tp, offset: String(next) });
      moved.push([tracker, next]);
    }
    if (offsets.length === 0) return;
    try {
      await this.commit(offsets);
      for (const [tracker, next] of moved) tracker.committed = Math.max(tracker.committed, next);
    } catch (err) {
      this.opts.logger.warn({ err }, 'offset commit failed; will retry');
    }
  }

  /** Ordered, guarded, idempotent: stop fetching → drain → flush → commit → leave. */
  close(): Promise<void> {
    this.stopping = true;
    this.closing ??= (async () => {
      const deadline = Date.now() + this.opts.drainTimeoutMs;
      await this.step('stop fetching', async () => {
        clearInterval(this.commitTimer);
        for (const timer of this.holdTimers.values()) clearTimeout(timer);
        this.holdTimers.clear();
        if (this.running) this.consumer.pause(this.opts.topics.map((topic) => ({ topic })));
      });
      if (this.work?.drain) await this.step('drain', () => this.work!.drain!(deadline));
      if (this.work?.flush) await this.step('flush', () => this.work!.flush!(deadline));
      if (this.trackers.size) await this.step('commit', () => this.commitWatermarks());
      if (this.running) await this.step('leave the group', () => this.consumer.disconnect());
      this.running = false;
    })();
    return this.closing;
  }

  private async step(name: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.opts.logger.warn({ err, step: name }, 'a shutdown step failed; continuing with the next');
    }
  }
}
