/**
 * Throttling episodes, durable (issue 18): deferrals never reach the DLQ or the delivery log, so
 * this is what lets the console, the digest and the alerts see an integration that waits on its
 * ATS's rate limit — apart from failures. Table `integration_throttling`
 * (db/migrations/018_throttling_and_digest_log.sql); its queries live here.
 *
 * The hot path only touches memory: `deferred()` adds to the integration's tally, `delivered()`
 * notes the time for integrations known to be throttled. Every `flushIntervalMs` one upsert writes
 * the tallies (episode start kept, count added, next attempt = the earliest due time still ahead;
 * a new episode when the last one had ended before these deferrals), one update ends the episodes of
 * integrations that delivered after their last recorded deferral (by any process) and after the last
 * due time of their deferred records — a burst drained at the ATS's pace, deliveries and deferrals
 * interleaved, stays one episode — and one read
 * refreshes which integrations are throttled. A failed flush keeps its tallies for the next one;
 * deliveries never wait on it.
 */
import type { Pool } from '../../lib/db.ts';
import type { Logger } from '../../lib/logger.ts';

export interface ThrottledIntegration {
  integrationId: string;
  integrationName: string | undefined;
  companyId: string;
  platform: string;
  throttledSince: number;
  lastDeferralAt: number;
  deferrals: number;
  nextAttemptAt: number | undefined;
  /** When the alerts e-mailed this episode as long (undefined: not yet). */
  alertedAt: number | undefined;
}

interface Tally {
  companyId: string;
  platform: string;
  first: number;
  last: number;
  count: number;
  /** Earliest and latest due time of these deferrals. */
  nextDue: number;
  lastDue: number;
}

export interface ThrottleLogOptions {
  pool: Pool;
  logger: Logger;
  flushIntervalMs?: number;
  now?: () => number;
}

export interface ThrottleLog {
  /** A record of this integration was deferred because of its rate limit, due again at `dueAt`. */
  deferred(integration: { integrationId: string; companyId: string; platform: string }, dueAt: number): void;
  /** A record of this integration was delivered. */
  delivered(integrationId: string): void;
  /** Write what was noted since the last flush (tests call it to not wait for the timer). */
  flush(): Promise<void>;
  start(): void;
  /** Stop the timer and flush one last time. */
  close(): Promise<void>;
}

export function createThrottleLog(opts: ThrottleLogOptions): ThrottleLog {
  const now = opts.now ?? Date.now;
  const flushIntervalMs = opts.flushIntervalMs ?? 1_000;
  let tallies = new Map<string, Tally>();
  /** Integration → last delivery noted since the last flush, for throttled ones only. */
  let deliveries = new Map<string, number>();
  /** Integrations in an episode (as of the last flush, plus those deferred here since). */
  let throttled = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let flushing: Promise<void> | undefined;

  async function write(): Promise<void> {
    const batch = tallies;
    const delivered = deliveries;
    tallies = new Map();
    deliveries = new Map();
    try {
      if (batch.size) {
        const rows = [...batch.entries()];
        await opts.pool.query(
          `INSERT INTO integration_throttling AS t (integration_id, company_id, platform, throttled_since, last_deferral_at, deferrals, next_attempt_at, last_due_at)
           SELECT d.id, d.company, d.platform, timestamptz 'epoch' + d.first * interval '1 millisecond', timestamptz 'epoch' + d.last * interval '1 millisecond', d.n,
                  timestamptz 'epoch' + d.due * interval '1 millisecond', timestamptz 'epoch' + d.last_due * interval '1 millisecond'
             FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[])
               AS d(id, company, platform, first, last, n, due, last_due)
           ON CONFLICT (integration_id) DO UPDATE SET
             company_id = EXCLUDED.company_id,
             platform = EXCLUDED.platform,
             throttled_since = CASE WHEN t.ended_at IS NULL THEN t.throttled_since ELSE GREATEST(EXCLUDED.throttled_since, t.ended_at) END,
             last_deferral_at = CASE WHEN t.ended_at IS NULL THEN GREATEST(t.last_deferral_at, EXCLUDED.last_deferral_at) ELSE EXCLUDED.last_deferral_at END,
             deferrals = CASE WHEN t.ended_at IS NULL THEN t.deferrals + EXCLUDED.deferrals ELSE EXCLUDED.deferrals END,
             next_attempt_at = CASE WHEN t.ended_at IS NOT NULL OR t.next_attempt_at IS NULL OR t.next_attempt_at < now() THEN EXCLUDED.next_attempt_at
                                    ELSE LEAST(t.next_attempt_at, EXCLUDED.next_attempt_at) END,
             last_due_at = CASE WHEN t.ended_at IS NULL THEN GREATEST(t.last_due_at, EXCLUDED.last_due_at) ELSE EXCLUDED.last_due_at END,
             alert_claimed_until = CASE WHEN t.ended_at IS NULL THEN t.alert_claimed_until END,
             alerted_at = CASE WHEN t.ended_at IS NULL THEN t.alerted_at END,
             ended_at = NULL
           -- deferrals older than the end of the last episode (flushed late) do not reopen it
           WHERE t.ended_at IS NULL OR EXCLUDED.last_deferral_at > t.ended_at`,
          [
            rows.map(([id]) => id),
            rows.map(([, t]) => t.companyId),
            rows.map(([, t]) => t.platform),
            rows.map(([, t]) => t.first),
            rows.map(([, t]) => t.last),
            rows.map(([, t]) => t.count),
            rows.map(([, t]) => t.nextDue),
            rows.map(([, t]) => t.lastDue),
          ],
        );
      }
      if (delivered.size) {
        const ended = await opts.pool.query<{ integration_id: string; throttled_since: Date; deferrals: string }>(
          `UPDATE integration_throttling t SET ended_at = timestamptz 'epoch' + d.at * interval '1 millisecond'
             FROM unnest($1::text[], $2::bigint[]) AS d(id, at)
            WHERE t.integration_id = d.id AND t.ended_at IS NULL
              AND GREATEST(t.last_deferral_at, t.last_due_at) < timestamptz 'epoch' + d.at * interval '1 millisecond'
            RETURNING t.integration_id, t.throttled_since, t.deferrals::text`,
          [[...delivered.keys()], [...delivered.values()]],
        );
        for (const row of ended.rows) {
          opts.logger.info({ integrationId: row.integration_id, throttledSince: row.throttled_since.toISOString(), deferrals: Number(row.deferrals) }, 'integration delivers again: throttling episode over');
        }
      }
      const { rows } = await opts.pool.query<{ integration_id: string }>('SELECT integration_id FROM integration_throttling WHERE ended_at IS NULL');
      throttled = new Set(rows.map((r) => r.integration_id));
      for (const id of tallies.keys()) throttled.add(id);
    } catch (err) {
      // Put them back (merged with what came meanwhile): the next flush writes them.
      for (const [id, t] of batch) merge(id, t);
      for (const [id, at] of delivered) if (!deliveries.has(id) || deliveries.get(id)! < at) deliveries.set(id, at);
      opts.logger.warn({ err, integrations: batch.size }, 'could not record throttling (kept for the next flush)');
    }
  }

  function merge(id: string, t: Tally): void {
    const cur = tallies.get(id);
    if (!cur) return void tallies.set(id, t);
    cur.first = Math.min(cur.first, t.first);
    cur.last = Math.max(cur.last, t.last);
    cur.count += t.count;
    cur.nextDue = Math.min(cur.nextDue, t.nextDue);
    cur.lastDue = Math.max(cur.lastDue, t.lastDue);
  }

  function flush(): Promise<void> {
    flushing ??= write().finally(() => (flushing = undefined));
    return flushing;
  }

  return {
    deferred(integration, dueAt) {
      const t = now();
      merge(integration.integrationId, { companyId: integration.companyId, platform: integration.platform, first: t, last: t, count: 1, nextDue: dueAt, lastDue: dueAt });
      throttled.add(integration.integrationId);
    },
    delivered(integrationId) {
      if (throttled.has(integrationId)) deliveries.set(integrationId, now());
    },
    flush,
    start() {
      timer ??= setInterval(() => void flush(), flushIntervalMs);
      timer.unref();
    },
    async close() {
      clearInterval(timer);
      await flushing;
      await flush();
    },
  };
}

/** Integrations in a throttling episode now, longest first (all, or those of the given ids). */
export async function listThrottled(pool: Pool, filter: { integrationIds?: string[]; companyId?: string } = {}): Promise<ThrottledIntegration[]> {
  const { rows } = await pool.query<ThrottledRow>(
    `SELECT t.integration_id, i.name, t.company_id, t.platform, t.throttled_since, t.last_deferral_at, t.deferrals::text, t.next_attempt_at, t.alerted_at
       FROM integration_throttling t LEFT JOIN integrations i ON i.id::text = t.integration_id
      WHERE t.ended_at IS NULL AND ($1::text[] IS NULL OR t.integration_id = ANY($1)) AND ($2::text IS NULL OR t.company_id = $2)
      ORDER BY t.throttled_since, t.integration_id`,
    [filter.integrationIds ?? null, filter.companyId ?? null],
  );
  return rows.map(throttledOf);
}

/** A row of integration_throttling joined with the integration's name. */
export interface ThrottledRow {
  integration_id: string;
  name: string | null;
  company_id: string;
  platform: string;
  throttled_since: Date;
  last_deferral_at: Date;
  deferrals: string;
  next_attempt_at: Date | null;
  alerted_at: Date | null;
}

export function throttledOf(r: ThrottledRow): ThrottledIntegration {
  return {
    integrationId: r.integration_id,
    integrationName: r.name ?? undefined,
    companyId: r.company_id,
    platform: r.platform,
    throttledSince: r.throttled_since.getTime(),
    lastDeferralAt: r.last_deferral_at.getTime(),
    deferrals: Number(r.deferrals),
    nextAttemptAt: r.next_attempt_at?.getTime(),
    alertedAt: r.alerted_at?.getTime(),
  };
}
