/**
 * Per-partition bookkeeping for out-of-order completion: records are accepted in offset order,
 * finish in any order, and the committable offset is the contiguous watermark — the lowest offset
 * whose outcome is not yet durable. A crash therefore replays only unfinished work.
 */
export class OffsetTracker {
  /** Accepted offsets in order, with whether each is done; finished ones at the head are dropped. */
  private readonly pending: Array<{ offset: number; done: boolean }> = [];
  private head = 0;
  /** Highest offset ever accepted (-1 = none). */
  highest = -1;
  /** Offset last committed (the next offset to read), -1 = nothing committed by us yet. */
  committed = -1;
  /** Accepted and not complete (kept as a count: the engine asks on every record). */
  private open = 0;

  accept(offset: number): void {
    if (offset <= this.highest) throw new Error(`offset ${offset} accepted twice (highest ${this.highest})`);
    this.pending.push({ offset, done: false });
    this.highest = offset;
    this.open++;
  }

  complete(offset: number): void {
    // Completions are near the head in practice; a linear scan from the head is cheap.
    for (let i = this.head; i < this.pending.length; i++) {
      const entry = this.pending[i]!;
      if (entry.offset === offset) {
        if (!entry.done) this.open--;
        entry.done = true;
        break;
      }
    }
    while (this.head < this.pending.length && this.pending[this.head]!.done) this.head++;
    if (this.head > 1024 && this.head * 2 > this.pending.length) {
      this.pending.splice(0, this.head);
      this.head = 0;
    }
  }

  /** Accepted records whose outcome is not durable yet (the ones holding their record in memory). */
  get inFlight(): number {
    return this.open;
  }

  /** Offsets tracked (in flight, or done behind an unfinished one: an offset each, no record). */
  get buffered(): number {
    return this.pending.length - this.head;
  }

  /** The offset to commit (next to read), or undefined when it would not move forward. */
  committable(): number | undefined {
    const next = this.head < this.pending.length ? this.pending[this.head]!.offset : this.highest + 1;
    return next > this.committed && this.highest >= 0 ? next : undefined;
  }
}
