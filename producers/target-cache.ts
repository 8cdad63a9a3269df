/**
 * Read-through cache of delivery targets (company + job → enabled integrations with their job
 * mapping) for the direct publisher: a backend calls publishApplication on every application, and a
 * registry query per call cost ten times the produce itself (issue 17: 9 % of the raw producer).
 *
 * Invalidation is the consumers' integration cache's (registry/cache.ts): every registry
 * write notifies CHANGE_CHANNEL with the integration id, this cache LISTENs on a dedicated
 * connection, and the TTL bounds staleness if a notification is ever missed. A notification names an
 * integration, not a company (a new integration's id is in no key yet), and registry writes are rare
 * admin actions, so any notification clears every entry. Loads that started before a clear are
 * returned to their callers but not kept (the epoch), so a lookup racing a write cannot pin the old
 * answer for a TTL. While the LISTEN connection is down nothing is cached: changes could go unseen.
 *
 * Concurrent lookups of the same key share one query (the in-flight promise is the entry).
 */
import type { Pool } from '../lib/db.ts';
import { findDeliveryTargets, type DeliveryTarget, type Queryable } from '../registry/lookups.ts';
import { createChangeFeed } from '../registry/change-feed.ts';
import { ReadThroughMap } from '../registry/read-through.ts';
import type { Logger } from '../lib/logger.ts';

export interface TargetCacheOptions {
  /** Queries the registry, and gives the LISTEN connection. */
  pool: Pool;
  logger: Logger;
  /** How long an answer is trusted without a notification (default 30 s, as the consumers' cache). */
  ttlMs?: number;
  maxEntries?: number;
  /** Delay before re-subscribing after the LISTEN connection dropped (default 1 s). */
  reconnectDelayMs?: number;
  now?: () => number;
  /** Called with each change notification's payload (an integration id), after the cache cleared. */
  onChange?: (integrationId: string) => void;
}

export interface TargetCache {
  /** Subscribes to change notifications; resolves once listening. Until then lookups go to the database. */
  start(): Promise<void>;
  /** findDeliveryTargets, from the cache when it is listening. */
  targets(companyId: string, jobId: string): Promise<DeliveryTarget[]>;
  clear(): void;
  readonly size: number;
  close(): Promise<void>;
}

export function createTargetCache(opts: TargetCacheOptions): TargetCache {
  const ttlMs = opts.ttlMs ?? 30_000;
  const maxEntries = opts.maxEntries ?? 10_000;
  const now = opts.now ?? Date.now;
  const entries = new ReadThroughMap<DeliveryTarget[]>(ttlMs, maxEntries, now);
  let closing: Promise<void> | undefined;

  const query: Queryable = opts.pool;

  function clear(): void {
    entries.invalidate();
  }

  function targets(companyId: string, jobId: string): Promise<DeliveryTarget[]> {
    // Not listening (not started, reconnecting, closed): a cached answer could be stale unseen.
    if (!feed.listening) return findDeliveryTargets(query, companyId, jobId);
    return entries.get(`${companyId}\u0000${jobId}`, () => findDeliveryTargets(query, companyId, jobId));
  }

  const feed = createChangeFeed({
    pool: opts.pool,
    // A notification names an integration, not a company: clear everything.
    onChange: (id) => {
      clear();
      opts.onChange?.(id);
    },
    onGap: clear,
    onLost: (err) => opts.logger.warn({ err }, 'delivery target cache: LISTEN connection lost; uncached until it is back'),
    reconnectDelayMs: opts.reconnectDelayMs,
  });

  return {
    start: () => feed.start(),
    targets,
    clear,
    get size() {
      return entries.size;
    },
    close() {
      return (closing ??= (async () => {
        clear();
        await feed.close();
      })());
    },
  };
}
