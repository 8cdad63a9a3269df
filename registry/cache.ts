/**
 * Read-through cache of integrations and job mappings for the consumers (a lookup per event would
 * otherwise be a query per event). Entries live `ttlMs`; a write through the repository of this
 * process invalidates at once, and with `listen` (a pool) writes from other processes do too, via
 * Postgres LISTEN/NOTIFY. The TTL bounds staleness if a notification is ever missed.
 */
import type { Pool } from '../lib/db.ts';
import { createChangeFeed } from './change-feed.ts';
import type { IntegrationRecord } from './integrations.ts';
import { ReadThroughMap } from './read-through.ts';
import type { IntegrationRepository } from './repository.ts';

export interface IntegrationCacheOptions {
  repository: IntegrationRepository;
  ttlMs?: number;
  maxEntries?: number;
  /** Subscribe to changes made by other processes (one dedicated connection from this pool). */
  listen?: Pool;
  /** Delay before re-subscribing after the LISTEN connection dropped. */
  reconnectDelayMs?: number;
  now?: () => number;
}

export interface IntegrationCache {
  /** Subscribes to change notifications when `listen` was given; resolves once listening. */
  start(): Promise<void>;
  getIntegration(id: string): Promise<IntegrationRecord | null>;
  /** The ATS's job id for our job id, or null when unmapped. */
  getJobMapping(integrationId: string, jobId: string): Promise<string | null>;
  invalidate(integrationId: string): void;
  clear(): void;
  readonly size: number;
  close(): Promise<void>;
}

export function createIntegrationCache(opts: IntegrationCacheOptions): IntegrationCache {
  const { repository } = opts;
  const ttlMs = opts.ttlMs ?? 30_000;
  const maxEntries = opts.maxEntries ?? 10_000;
  const now = opts.now ?? Date.now;
  const entries = new ReadThroughMap<unknown>(ttlMs, maxEntries, now);
  let closed = false;
  let closing: Promise<void> | undefined;

  const integrationKey = (id: string): string => `i\u0000${id}`;
  const mappingKey = (id: string, jobId: string): string => `j\u0000${id}\u0000${jobId}`;

  function readThrough<T>(key: string, load: () => Promise<T>): Promise<T> {
    return entries.get(key, load) as Promise<T>;
  }

  function invalidate(integrationId: string): void {
    const prefix = `\u0000${integrationId}`;
    entries.invalidate((key) => key.slice(1, 1 + prefix.length) === prefix);
  }

  function clear(): void {
    entries.invalidate();
  }

  const unsubscribe = repository.onChange(invalidate);

  const feed = opts.listen
    ? createChangeFeed({
        pool: opts.listen,
        onChange: (id) => {
          if (id) invalidate(id);
        },
        onGap: clear,
        reconnectDelayMs: opts.reconnectDelayMs,
      })
    : undefined;

  return {
    start: async () => {
      if (!closed) await feed?.start();
    },
    getIntegration: (id) => readThrough(integrationKey(id), () => repository.getIntegration(id)),
    getJobMapping: (integrationId, jobId) => readThrough(mappingKey(integrationId, jobId), () => repository.findJobMapping(integrationId, jobId)),
    invalidate,
    clear,
    get size() {
      return entries.size;
    },
    close() {
      return (closing ??= (async () => {
        closed = true;
        unsubscribe();
        await feed?.close();
        entries.invalidate();
      })());
    },
  };
}
