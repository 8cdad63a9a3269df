/**
 * The job-mappings aggregate: our job id → the ATS's job id, per integration. A mapping is part of
 * what a cached integration carries, so every write announces the integration as changed.
 */
import type { Pool } from '../lib/db.ts';
import { notFound } from './errors.ts';
import { CHANGE_CHANNEL } from './integrations.ts';
import { integrationVisible, isUuid, scopeClause, type Scope } from './scope.ts';

export interface JobMapping {
  integrationId: string;
  jobId: string;
  externalJobId: string;
  createdAt: Date;
  updatedAt: Date;
}

export interface JobMappingStore {
  putJobMapping(integrationId: string, jobId: string, externalJobId: string, scope?: Scope): Promise<{ mapping: JobMapping; created: boolean }>;
  deleteJobMapping(integrationId: string, jobId: string, scope?: Scope): Promise<boolean>;
  findJobMapping(integrationId: string, jobId: string): Promise<string | null>;
  listJobMappings(integrationId: string, scope?: Scope): Promise<JobMapping[]>;
}

export function createJobMappingStore({ pool, changed }: { pool: Pool; changed: (integrationId: string) => void }): JobMappingStore {
  return {
    async putJobMapping(integrationId, jobId, externalJobId, scope) {
      if (!isUuid(integrationId)) throw notFound('integration', integrationId);
      const params: unknown[] = [integrationId, jobId, externalJobId];
      const { rows } = await pool.query<{ created_at: Date; updated_at: Date; created: boolean }>(
        `INSERT INTO job_mappings (integration_id, job_id, external_job_id)
         SELECT id, $2, $3 FROM integrations WHERE id = $1 AND deleted_at IS NULL${scopeClause(scope, params)}
         ON CONFLICT (integration_id, job_id) DO UPDATE SET external_job_id = EXCLUDED.external_job_id, updated_at = now()
         RETURNING created_at, updated_at, (xmax = 0) AS created, pg_notify('${CHANGE_CHANNEL}', integration_id::text)`,
        params,
      );
      const row = rows[0];
      if (!row) throw notFound('integration', integrationId);
      changed(integrationId);
      return { mapping: { integrationId, jobId, externalJobId, createdAt: row.created_at, updatedAt: row.updated_at }, created: row.created };
    },

    async deleteJobMapping(integrationId, jobId, scope) {
      if (!(await integrationVisible(pool, integrationId, scope))) throw notFound('integration', integrationId);
      const { rowCount } = await pool.query(
        `DELETE FROM job_mappings WHERE integration_id = $1 AND job_id = $2 RETURNING pg_notify('${CHANGE_CHANNEL}', integration_id::text)`,
        [integrationId, jobId],
      );
      if (rowCount) changed(integrationId);
      return rowCount === 1;
    },

    async findJobMapping(integrationId, jobId) {
      if (!isUuid(integrationId)) return null;
      const { rows } = await pool.query<{ external_job_id: string }>(
        'SELECT external_job_id FROM job_mappings WHERE integration_id = $1 AND job_id = $2',
        [integrationId, jobId],
      );
      return rows[0]?.external_job_id ?? null;
    },

    async listJobMappings(integrationId, scope) {
      if (!(await integrationVisible(pool, integrationId, scope))) throw notFound('integration', integrationId);
      const { rows } = await pool.query<{ job_id: string; external_job_id: string; created_at: Date; updated_at: Date }>(
        'SELECT job_id, external_job_id, created_at, updated_at FROM job_mappings WHERE integration_id = $1 ORDER BY job_id',
        [integrationId],
      );
      return rows.map((r) => ({ integrationId, jobId: r.job_id, externalJobId: r.external_job_id, createdAt: r.created_at, updatedAt: r.updated_at }));
    },
  };
}
