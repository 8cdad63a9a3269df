/**
 * The read-through map under the registry's caches (cache.ts for the consumers, and the direct
 * publisher's target cache): entries live `ttlMs`, the oldest goes first past `maxEntries`, and
 * concurrent reads of one key share one load (the in-flight promise is the entry). A load that
 * started before an invalidation is returned to its callers but not kept, so a read racing a write
 * cannot pin the old answer for a TTL; a load that fails is not kept either.
 */
interface Entry<T> {
  expiresAt: number;
  value: Promise<T>;
}

export class ReadThroughMap<T> {
  private readonly entries = new Map<string, Entry<T>>();
  /** Bumped by every invalidation. */
  private epoch = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
    private readonly now: () => number,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string, load: () => Promise<T>): Promise<T> {
    const hit = this.entries.get(key);
    this.entries.delete(key);
    if (hit && hit.expiresAt > this.now()) {
      this.entries.set(key, hit); // most recently used last
      return hit.value;
    }
    const startedAt = this.epoch;
    const value = load();
    const entry: Entry<T> = { expiresAt: this.now() + this.ttlMs, value };
    this.entries.set(key, entry);
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    value.then(
      () => {
        if (startedAt !== this.epoch && this.entries.get(key) === entry) this.entries.delete(key);
      },
      () => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
      },
    );
    return value;
  }

  /** Forget the entries whose key matches (all without a predicate). */
  invalidate(matches?: (key: string) => boolean): void {
    this.epoch += 1;
    if (!matches) return this.entries.clear();
    for (const key of this.entries.keys()) if (matches(key)) this.entries.delete(key);
  }
}
