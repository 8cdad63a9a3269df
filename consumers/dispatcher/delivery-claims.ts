/**
 * One live delivery per application, made durable in PostgreSQL (migration 013):
 * - routes: "group G consumed topic/partition/offset and routed it onward" — a record consumed
 *   again after a crash before its offset commit is acknowledged without a call, like a delivered one;
 * - leases: held per (integration, application) while the ATS is called, renewed while the call
 *   runs, expiring when the holder died — a second process gets no lease and defers.
 * Calls are coalesced like the delivery log's, so hundreds of concurrent deliveries share statements.
 */
import { randomUUID } from 'node:crypto';
import type { Pool } from '../../lib/db.ts';
import { Coalescer } from './delivery-log.ts';
import { applicationKey } from './delivery-store.ts';

export interface RecordCoordinates {
  group: string;
  topic: string;
  partition: number;
  offset: string;
}

export interface RouteEntry extends RecordCoordinates {
  integrationId: string | undefined;
  applicationId: string | undefined;
  routedTo: string;
}

export interface Lease {
  readonly acquired: boolean;
  /** This attempt's holder id (when acquired): a statement that ends the delivery deletes the lease row by it (delivery-store.ts releaseLease). */
  readonly holder: string | undefined;
  /**
   * Such a statement committed: the row is gone, so renewals stop and release() has nothing left
   * to do. Without it (the statement failed), release() deletes the row itself.
   */
  releasedElsewhere(): void;
  /** Give the lease back (idempotent). */
  release(): Promise<void>;
}

export interface DeliveryClaims {
  wasRouted(at: RecordCoordinates): Promise<boolean>;
  recordRoute(entry: RouteEntry): Promise<void>;
  /** The application is delivered: its routes have done their job. */
  forgetRoutes(integrationId: string, applicationId: string): Promise<void>;
  lease(integrationId: string, applicationId: string): Promise<Lease>;
  /**
   * Drop routes older than `olderThanMs` (past the topics' retention no copy can be replayed) and
   * leases that expired (their holder died); returns the rows removed.
   */
  prune(olderThanMs: number): Promise<number>;
}

export interface ClaimsOptions {
  /** Lease lifetime without renewal; a dead holder blocks the application at most this long. */
  leaseTtlMs?: number;
  maxBatch?: number;
  maxConcurrent?: number;
}

const coordKey = (c: RecordCoordinates): string => `${c.group}\u0000${c.topic}\u0000${c.partition}\u0000${c.offset}`;

export function createDeliveryClaims(pool: Pick<Pool, 'query'>, opts: ClaimsOptions = {}): DeliveryClaims {
  const ttlMs = opts.leaseTtlMs ?? 30_000;
  const maxBatch = opts.maxBatch ?? 500;
  const maxConcurrent = opts.maxConcurrent ?? 2;

  const finds = new Coalescer<RecordCoordinates, boolean>(
    async (keys) => {
      const { rows } = await pool.query<{ consumer_group: string; topic: string; partition: number; record_offset: string }>(
        `SELECT r.consumer_group, r.topic, r.partition, r.record_offset::text AS record_offset
         FROM delivery_routes r
         JOIN unnest($1::text[], $2::text[], $3::int[], $4::bigint[]) AS k(g, t, p, o)
           ON r.topic = k.t AND r.partition = k.p AND r.record_offset = k.o AND r.consumer_group = k.g`,
        [keys.map((k) => k.group), keys.map((k) => k.topic), keys.map((k) => k.partition), keys.map((k) => k.offset)],
      );
      const found = new Set(rows.map((r) => coordKey({ group: r.consumer_group, topic: r.topic, partition: r.partition, offset: r.record_offset })));
      return keys.map((k) => found.has(coordKey(k)));
    },
    maxBatch,
    maxConcurrent,
  );

  const writes = new Coalescer<RouteEntry, void>(
    async (entries) => {
      await pool.query(
        `INSERT INTO delivery_routes (consumer_group, topic, partition, record_offset, integration_id, application_id, routed_to)
         SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[], $5::text[], $6::text[], $7::text[])
         ON CONFLICT DO NOTHING`,
        [
          entries.map((e) => e.group), entries.map((e) => e.topic), entries.map((e) => e.partition), entries.map((e) => e.offset),
          entries.map((e) => e.integrationId ?? null), entries.map((e) => e.applicationId ?? null), entries.map((e) => e.routedTo),
        ],
      );
      return entries.map(() => undefined);
    },
    maxBatch,
    maxConcurrent,
  );

  const forgets = new Coalescer<{ integrationId: string; applicationId: string }, void>(
    async (keys) => {
      await pool.query(
        `DELETE FROM delivery_routes r USING unnest($1::text[], $2::text[]) AS k(i, a)
         WHERE r.integration_id = k.i AND r.application_id = k.a`,
        [keys.map((k) => k.integrationId), keys.map((k) => k.applicationId)],
      );
      return keys.map(() => undefined);
    },
    maxBatch,
    maxConcurrent,
  );

  type LeaseKey = { integrationId: string; applicationId: string; holder: string };
  const acquires = new Coalescer<LeaseKey, boolean>(
    async (keys) => {
      // Taken when free or expired; a live holder's row is left alone (no row returned for it).
      const { rows } = await pool.query<{ integration_id: string; application_id: string; holder: string }>(
        `INSERT INTO delivery_leases AS l (integration_id, application_id, holder, expires_at)
         SELECT i, a, h, now() + make_interval(secs => $4::double precision)
         FROM unnest($1::text[], $2::text[], $3::text[]) AS k(i, a, h)
         ON CONFLICT (integration_id, application_id) DO UPDATE
           SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
           WHERE l.expires_at < now()
         RETURNING integration_id, application_id, holder`,
        [keys.map((k) => k.integrationId), keys.map((k) => k.applicationId), keys.map((k) => k.holder), ttlMs / 1000],
      );
      const won = new Set(rows.map((r) => `${applicationKey(r.integration_id, r.application_id)}\u0000${r.holder}`));
      return keys.map((k) => won.has(`${applicationKey(k.integrationId, k.applicationId)}\u0000${k.holder}`));
    },
    maxBatch,
    maxConcurrent,
    (k) => applicationKey(k.integrationId, k.applicationId),
  );

  const releases = new Coalescer<LeaseKey, void>(
    async (keys) => {
      await pool.query(
        `DELETE FROM delivery_leases l USING unnest($1::text[], $2::text[], $3::text[]) AS k(i, a, h)
         WHERE l.integration_id = k.i AND l.application_id = k.a AND l.holder = k.h`,
        [keys.map((k) => k.integrationId), keys.map((k) => k.applicationId), keys.map((k) => k.holder)],
      );
      return keys.map(() => undefined);
    },
    maxBatch,
    maxConcurrent,
  );

  return {
    wasRouted: (at) => finds.call(at),
    recordRoute: (entry) => writes.call(entry),
    forgetRoutes: (integrationId, applicationId) => forgets.call({ integrationId, applicationId }),
    async prune(olderThanMs) {
      const routes = await pool.query(`DELETE FROM delivery_routes WHERE created_at < now() - make_interval(secs => $1::double precision)`, [olderThanMs / 1000]);
      const leases = await pool.query(`DELETE FROM delivery_leases WHERE expires_at < now() - interval '1 hour'`);
      return (routes.rowCount ?? 0) + (leases.rowCount ?? 0);
    },
    async lease(integrationId, applicationId) {
      const key: LeaseKey = { integrationId, applicationId, holder: randomUUID() };
      const acquired = await acquires.call(key);
      if (!acquired) return { acquired, holder: undefined, releasedElsewhere: () => undefined, release: async () => undefined };
      // Renewed while held: a slow ATS call must not let the lease lapse under a live holder.
      const renewal = setInterval(() => {
        pool
          .query(`UPDATE delivery_leases SET expires_at = now() + make_interval(secs => $4::double precision)
                  WHERE integration_id = $1 AND application_id = $2 AND holder = $3`, [integrationId, applicationId, key.holder, ttlMs / 1000])
          .catch(() => undefined); // a missed renewal is retried at the next tick; the TTL covers two
      }, Math.max(1_000, Math.floor(ttlMs / 3)));
      renewal.unref();
      let released: Promise<void> | undefined;
      return {
        acquired,
        holder: key.holder,
        releasedElsewhere() {
          clearInterval(renewal);
          released ??= Promise.resolve();
        },
        release() {
          clearInterval(renewal);
          released ??= releases.call(key);
          return released;
        },
      };
    },
  };
}
