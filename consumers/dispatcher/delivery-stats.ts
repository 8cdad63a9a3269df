/**
 * Figures over the delivery log for the console's integration cards and chart (its only reader). The log holds one
 * row per (integration, application) with its latest status, so "in the last 24 h" means rows whose
 * latest attempt (or creation, for pending rows) falls in the window.
 */
import type { Pool } from '../../lib/db.ts';
import type { DeliveryStatus } from './delivery-store.ts';

export type StatusCounts = Record<DeliveryStatus, number>;

export const emptyCounts = (): StatusCounts => ({ pending: 0, delivered: 0, retrying: 0, dead_lettered: 0 });

/** Per integration, rows by status whose last activity is at or after `since`. */
export async function deliveryCounts(pool: Pool, integrationIds: string[], since: Date): Promise<Map<string, StatusCounts>> {
  const out = new Map<string, StatusCounts>(integrationIds.map((id) => [id, emptyCounts()]));
  if (integrationIds.length === 0) return out;
  const { rows } = await pool.query<{ integration_id: string; status: DeliveryStatus; n: string }>(
    `SELECT integration_id, status, count(*) AS n FROM deliveries
     WHERE integration_id = ANY($1::uuid[]) AND COALESCE(last_attempt_at, created_at) >= $2
     GROUP BY integration_id, status`,
    [integrationIds, since],
  );
  for (const r of rows) out.get(r.integration_id)![r.status] = Number(r.n);
  return out;
}

export interface HourBucket {
  /** Start of the hour (UTC). */
  hour: Date;
  counts: StatusCounts;
}

/** One bucket per hour from `since` (floored to the hour) to now, including empty hours. */
export async function deliveriesPerHour(pool: Pool, integrationId: string, since: Date, now = new Date()): Promise<HourBucket[]> {
  const { rows } = await pool.query<{ hour: Date; status: DeliveryStatus; n: string }>(
    `SELECT date_trunc('hour', COALESCE(last_attempt_at, created_at)) AS hour, status, count(*) AS n FROM deliveries
     WHERE integration_id = $1 AND COALESCE(last_attempt_at, created_at) >= $2
     GROUP BY 1, 2`,
    [integrationId, since],
  );
  const HOUR = 3_600_000;
  const first = Math.floor(since.getTime() / HOUR) * HOUR;
  const buckets: HourBucket[] = [];
  for (let t = first; t <= now.getTime(); t += HOUR) buckets.push({ hour: new Date(t), counts: emptyCounts() });
  for (const r of rows) {
    const i = Math.floor((r.hour.getTime() - first) / HOUR);
    if (buckets[i]) buckets[i].counts[r.status] += Number(r.n);
  }
  return buckets;
}
