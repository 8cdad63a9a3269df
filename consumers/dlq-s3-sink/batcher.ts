/**
 * Per-partition batching of the DLQ → S3 sink (no I/O here; index.ts writes and commits).
 *
 * THE INVARIANT that makes archive objects exactly-once across crashes:
 *
 *   1. A partition has at most one object that is written but not committed, and it starts at the
 *      partition's committed offset. (Batches of a partition are written strictly one after the
 *      other: the next batch is sealed only after the previous one's offsets are committed, and a
 *      batch is everything accepted since the last commit, in offset order.)
 *   2. An object's key prefix is a function of its first record only:
 *      `…/dt=<UTC date of that record's timestamp>/partition=<p>/<firstOffset>-`.
 *   3. Before committing an object, every other object with the same key prefix is deleted.
 *
 * After a crash the partition is re-read from the committed offset, so the next batch starts at the
 * same first record as the uncommitted leftover (same prefix, by 2). Its end may differ (count, bytes
 * and age cut it anew), and step 3 removes the leftover before the commit. So every offset ends up in
 * exactly one committed-over object, with no gaps (nothing is committed before it is stored).
 *
 * Not covered: two processes owning one partition at once (a zombie after a session timeout) can
 * each leave an object starting at the same offset if their writes interleave with the deletes.
 */
import type { DeadLetterRecord } from '../../lib/dlq-archive.ts';
import type { BatchLimits } from './options.ts';

export interface Batch {
  topic: string;
  partition: number;
  records: DeadLetterRecord[];
  bytes: number;
  /** When the first record was accepted (process clock), for the age limit. */
  openedAt: number;
}

export type AcceptResult = 'accepted' | 'duplicate' | 'full';

export function recordBytes(record: DeadLetterRecord): number {
  let n = (record.key?.length ?? 0) + (record.value?.length ?? 0) + 64;
  for (const [name, v] of Object.entries(record.headers)) {
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) n += name.length + Buffer.byteLength(one);
  }
  return n;
}

export class PartitionBatcher {
  private open: Batch;
  /** The batch being written (at most one per partition: see the invariant). */
  private sealed: Batch | undefined;
  /** Next offset not yet accepted; a re-fetch after a rebalance skips everything below it. */
  private nextOffset = -1;

  constructor(
    readonly topic: string,
    readonly partition: number,
    private readonly limits: BatchLimits,
  ) {
    this.open = this.emptyBatch(0);
  }

  private emptyBatch(now: number): Batch {
    return { topic: this.topic, partition: this.partition, records: [], bytes: 0, openedAt: now };
  }

  /** Records held in memory (open + being written). */
  get buffered(): number {
    return this.open.records.length + (this.sealed?.records.length ?? 0);
  }

  get writing(): boolean {
    return this.sealed !== undefined;
  }

  /** The open batch reached a limit; fetching must pause until it can be sealed. */
  get full(): boolean {
    return this.open.records.length >= this.limits.maxRecords || this.open.bytes >= this.limits.maxBytes;
  }

  accept(record: DeadLetterRecord, now: number): AcceptResult {
    const offset = Number(record.offset);
    if (offset < this.nextOffset) return 'duplicate';
    if (this.full) return 'full';
    if (this.open.records.length === 0) this.open.openedAt = now;
    this.open.records.push(record);
    this.open.bytes += recordBytes(record);
    this.nextOffset = offset + 1;
    return 'accepted';
  }

  /**
   * Seal the open batch for writing if nothing is being written and it is full, old enough, or
   * `force` (shutdown). Returns the batch to write, or undefined.
   */
  seal(now: number, force = false): Batch | undefined {
    if (this.sealed || this.open.records.length === 0) return undefined;
    if (!force && !this.full && now - this.open.openedAt < this.limits.maxAgeMs) return undefined;
    this.sealed = this.open;
    this.open = this.emptyBatch(now);
    return this.sealed;
  }

  /** The sealed batch is stored and committed. */
  written(batch: Batch): void {
    if (this.sealed === batch) this.sealed = undefined;
  }
}
