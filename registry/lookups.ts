/**
 * Read-only lookups the producers need from the integration registry. Apart from repository.ts on
 * purpose: they never touch credentials, so a backend service that publishes needs no keyring, and
 * they take any Queryable, so an outbox enqueue reads through the caller's own transaction.
 */
import type { Platform } from './integration.ts';
import type { PoolClient } from '../lib/db.ts';

/** A pool or a client inside the caller's transaction. */
export type Queryable = Pick<PoolClient, 'query'>;

export interface DeliveryTarget {
  integrationId: string;
  platform: Platform;
  /** The ATS's job id for the job, from the job mapping; null when the job is not mapped. */
  atsJobId: string | null;
}

/**
 * The company's enabled integrations, oldest first, each with the mapping of `jobId`. One query;
 * an integration without a mapping for the job comes back with `atsJobId: null`.
 */
export async function findDeliveryTargets(db: Queryable, companyId: string, jobId: string): Promise<DeliveryTarget[]> {
  const { rows } = await db.query<{ id: string; platform: Platform; external_job_id: string | null }>(
    `SELECT i.id, i.platform, m.external_job_id
       FROM integrations i
       LEFT JOIN job_mappings m ON m.integration_id = i.id AND m.job_id = $2
      WHERE i.company_id = $1 AND i.enabled AND i.deleted_at IS NULL
      ORDER BY i.created_at, i.id`,
    [companyId, jobId],
  );
  return rows.map((r) => ({ integrationId: r.id, platform: r.platform, atsJobId: r.external_job_id }));
}

/** Job ids mapped in any enabled integration of the company (the sample publisher applies to those). */
export async function mappedJobIds(db: Queryable, companyId: string): Promise<string[]> {
  const { rows } = await db.query<{ job_id: string }>(
    `SELECT DISTINCT m.job_id FROM job_mappings m JOIN integrations i ON i.id = m.integration_id
      WHERE i.company_id = $1 AND i.enabled AND i.deleted_at IS NULL ORDER BY m.job_id`,
    [companyId],
  );
  return rows.map((r) => r.job_id);
}
