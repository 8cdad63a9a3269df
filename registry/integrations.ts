/**
 * The integrations aggregate: one row per customer ATS configuration, credentials sealed with the
 * keyring (sealed-credentials.ts), optimistic locking by `version`, soft delete that shreds the
 * credentials. Every write announces the id on CHANGE_CHANNEL (for caches in other processes) and
 * to this process's change listeners.
 */
import { randomUUID } from 'node:crypto';
import type { Pool } from '../lib/db.ts';
import type { Integration, Platform } from './integration.ts';
import { notFound, versionConflict } from './errors.ts';
import type { CredentialSeal } from './sealed-credentials.ts';
import { isUuid, scopeClause, type Scope } from './scope.ts';
import type { NewIntegrationInput } from './validation.ts';

/** Postgres channel announcing changed integration ids (payload: the id), for caches in other processes. */
export const CHANGE_CHANNEL = 'ats_relay_integration_changed';

export interface IntegrationRecord<P extends Platform = Platform> extends Integration<P> {
  credentialsKeyId: string;
  createdAt: Date;
  updatedAt: Date;
  lastDeliveryAt: Date | null;
  lastError: string | null;
  lastErrorAt: Date | null;
}

export type IntegrationChanges = Partial<Omit<NewIntegrationInput, 'platform'>>;

export interface IntegrationStore {
  createIntegration(companyId: string, input: NewIntegrationInput): Promise<IntegrationRecord>;
  getIntegration(id: string, scope?: Scope): Promise<IntegrationRecord | null>;
  listIntegrations(filter?: Scope & { platform?: Platform }): Promise<IntegrationRecord[]>;
  /** Optimistic locking: applies only when the stored version is `expectedVersion`; bumps it. */
  updateIntegration(id: string, expectedVersion: number, changes: IntegrationChanges, scope?: Scope): Promise<IntegrationRecord>;
  /** Soft delete: the row stays for the delivery log, its credentials are shredded. */
  deleteIntegration(id: string, scope?: Scope): Promise<boolean>;
}

export interface IntegrationRow {
  id: string;
  company_id: string;
  platform: Platform;
  name: string;
  credentials_ciphertext: Buffer | null;
  credentials_key_id: string | null;
  api_base_url: string | null;
  settings: Integration['settings'];
  enabled: boolean;
  allow_missing_resume: boolean;
  version: number;
  created_at: Date;
  updated_at: Date;
  last_delivery_at: Date | null;
  last_error: string | null;
  last_error_at: Date | null;
}

export const INTEGRATION_COLUMNS = `id, company_id, platform, name, credentials_ciphertext, credentials_key_id, api_base_url, settings,
  enabled, allow_missing_resume, version, created_at, updated_at, last_delivery_at, last_error, last_error_at`;


/** Tells this process's listeners; a listener's failure must not fail the write that already committed. */
export function createChangeListeners(): { emit(integrationId: string): void; on(listener: (integrationId: string) => void): () => void } {
  const listeners = new Set<(id: string) => void>();
  return {
    emit(id) {
      for (const l of listeners) {
        try {
          l(id);
        } catch {
          // The write is committed; the cache behind this listener also hears CHANGE_CHANNEL.
        }
      }
    },
    on(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

export function createIntegrationStore({ pool, credentials, changed }: { pool: Pool; credentials: CredentialSeal; changed: (integrationId: string) => void }): IntegrationStore {
  function toRecord(r: IntegrationRow): IntegrationRecord {
    return {
      id: r.id,
      companyId: r.company_id,
      platform: r.platform,
      name: r.name,
      credentials: credentials.open(r),
      apiBaseUrl: r.api_base_url,
      settings: r.settings,
      enabled: r.enabled,
      allowMissingResume: r.allow_missing_resume,
      version: r.version,
      credentialsKeyId: r.credentials_key_id ?? '',
      createdAt: r.created_at,
      updatedAt: r.updated_at,
      lastDeliveryAt: r.last_delivery_at,
      lastError: r.last_error,
      lastErrorAt: r.last_error_at,
    };
  }

  async function getIntegration(id: string, scope?: Scope): Promise<IntegrationRecord | null> {
    if (!isUuid(id)) return null;
    const params: unknown[] = [id];
    const { rows } = await pool.query<IntegrationRow>(
      `SELECT ${INTEGRATION_COLUMNS} FROM integrations WHERE id = $1 AND deleted_at IS NULL${scopeClause(scope, params)}`,
      params,
    );
    return rows[0] ? toRecord(rows[0]) : null;
  }

  return {
    async createIntegration(companyId, input) {
      const id = randomUUID();
      const { blob, keyId } = credentials.seal(id, input.credentials);
      const { rows } = await pool.query<IntegrationRow>(
        `INSERT INTO integrations (id, company_id, platform, name, credentials_ciphertext, credentials_key_id, api_base_url,
           settings, enabled, allow_missing_resume)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         RETURNING ${INTEGRATION_COLUMNS}, pg_notify('${CHANGE_CHANNEL}', id::text)`,
        [id, companyId, input.platform, input.name, blob, keyId, input.apiBaseUrl, JSON.stringify(input.settings), input.enabled, input.allowMissingResume],
      );
      changed(id);
      return toRecord(rows[0]!);
    },

    getIntegration,

    async listIntegrations(filter = {}) {
      const params: unknown[] = [];
      let where = 'deleted_at IS NULL' + scopeClause(filter, params);
      if (filter.platform) {
        params.push(filter.platform);
        where += ` AND platform = $${params.length}`;
      }
      const { rows } = await pool.query<IntegrationRow>(
        `SELECT ${INTEGRATION_COLUMNS} FROM integrations WHERE ${where} ORDER BY company_id, created_at, id`,
        params,
      );
      return rows.map(toRecord);
    },

    async updateIntegration(id, expectedVersion, changes, scope) {
      if (!isUuid(id)) throw notFound('integration', id);
      const params: unknown[] = [id, expectedVersion];
      const sets: string[] = [];
      const set = (column: string, value: unknown): void => {
        params.push(value);
        sets.push(`${column} = $${params.length}`);
      };
      if (changes.name !== undefined) set('name', changes.name);
      if (changes.apiBaseUrl !== undefined) set('api_base_url', changes.apiBaseUrl);
      if (changes.settings !== undefined) set('settings', JSON.stringify(changes.settings));
      if (changes.enabled !== undefined) set('enabled', changes.enabled);
      if (changes.allowMissingResume !== undefined) set('allow_missing_resume', changes.allowMissingResume);
      if (changes.credentials !== undefined) {
        const { blob, keyId } = credentials.seal(id, changes.credentials);
        set('credentials_ciphertext', blob);
        set('credentials_key_id', keyId);
      }
      const scoped = scopeClause(scope, params);
      const { rows } = await pool.query<IntegrationRow>(
        `UPDATE integrations SET ${[...sets, 'version = version + 1', 'updated_at = now()'].join(', ')}
         WHERE id = $1 AND version = $2 AND deleted_at IS NULL${scoped}
         RETURNING ${INTEGRATION_COLUMNS}, pg_notify('${CHANGE_CHANNEL}', id::text)`,
        params,
      );
      if (rows[0]) {
        changed(id);
        return toRecord(rows[0]);
      }
      // Nothing updated: either it is not there (for this scope) or someone else moved the version on.
      const checkParams: unknown[] = [id];
      const current = await pool.query<{ version: number }>(
        `SELECT version FROM integrations WHERE id = $1 AND deleted_at IS NULL${scopeClause(scope, checkParams)}`,
        checkParams,
      );
      const row = current.rows[0];
      if (!row) throw notFound('integration', id);
      throw versionConflict(id, expectedVersion, row.version);
    },

    async deleteIntegration(id, scope) {
      if (!isUuid(id)) return false;
      const params: unknown[] = [id];
      const { rowCount } = await pool.query(
        `UPDATE integrations
           SET deleted_at = now(), enabled = false, credentials_ciphertext = NULL, credentials_key_id = NULL,
               version = version + 1, updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL${scopeClause(scope, params)}
         RETURNING pg_notify('${CHANGE_CHANNEL}', id::text)`,
        params,
      );
      if (rowCount) changed(id);
      return rowCount === 1;
    },
  };
}
