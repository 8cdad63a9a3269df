/**
 * Every SQL statement of the integration registry: integrations (credentials sealed with the
 * keyring), job mappings, the delivery log and API tokens. The API, the CLI, the producers and the
 * consumers all go through this module.
 *
 * Tenant isolation lives here too: reads and writes take an optional `scope`; with a companyId,
 * another company's rows simply do not exist (null / not_found), whatever the id.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { ConfigError } from '../lib/config.ts';
import { CryptoError, KEYRING_VARIABLE, pack, unpack, type Keyring } from './keyring.ts';
import type { Pool } from '../lib/db.ts';
import { truncate } from '../lib/errors.ts';
import type { Credentials, Integration, Platform } from './integration.ts';
import { notFound, RegistryError, ValidationError, versionConflict } from './errors.ts';
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

/** Restricts a call to one company; omit (or leave companyId undefined) for admin access. */
export interface Scope {
  companyId?: string | undefined;
}

export type IntegrationChanges = Partial<Omit<NewIntegrationInput, 'platform'>>;

export interface JobMapping {
  integrationId: string;
  jobId: string;
  externalJobId: string;
  createdAt: Date;
  updatedAt: Date;
}

export const DELIVERY_STATUSES = ['pending', 'delivered', 'retrying', 'dead_lettered'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

export interface DeliveryRecord {
  id: string;
  integrationId: string;
  applicationId: string;
  eventId: string;
  status: DeliveryStatus;
  tryCount: number;
  errorCode: string | null;
  errorMessage: string | null;
  errorStatus: number | null;
  externalCandidateId: string | null;
  externalApplicationId: string | null;
  firstAttemptAt: Date | null;
  lastAttemptAt: Date | null;
  deliveredAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface DeliveryOutcome {
  integrationId: string;
  applicationId: string;
  eventId: string;
  status: DeliveryStatus;
  /** Whether this outcome follows a call to the ATS (counts as a try). Default: status !== 'pending'. */
  attempted?: boolean;
  error?: { code: string; message: string; status?: number | undefined } | undefined;
  externalCandidateId?: string | undefined;
  externalApplicationId?: string | undefined;
  /** The candidate's e-mail: kept only as candidateEmailKey(), so a delivery can be found by it. */
  candidateEmail?: string | undefined;
  /** When the attempt finished (default: now). */
  at?: Date;
}

/** How the delivery log keys a candidate's e-mail: SHA-256 of the trimmed, lower-cased address. */
export function candidateEmailKey(email: string): Buffer {
  return createHash('sha256').update(email.trim().toLowerCase(), 'utf8').digest();
}

export interface DeliveryPage {
  items: DeliveryRecord[];
  /** Pass back as `cursor` for the next (older) page; null at the end. */
  nextCursor: string | null;
}

export type TokenScope = { kind: 'admin' } | { kind: 'company'; companyId: string };

export interface ApiToken {
  id: string;
  name: string;
  scope: TokenScope;
  createdAt: Date;
}

export interface IntegrationRepository {
  createIntegration(companyId: string, input: NewIntegrationInput): Promise<IntegrationRecord>;
  getIntegration(id: string, scope?: Scope): Promise<IntegrationRecord | null>;
  listIntegrations(filter?: Scope & { platform?: Platform }): Promise<IntegrationRecord[]>;
  /** Optimistic locking: applies only when the stored version is `expectedVersion`; bumps it. */
  updateIntegration(id: string, expectedVersion: number, changes: IntegrationChanges, scope?: Scope): Promise<IntegrationRecord>;
  /** Soft delete: the row stays for the delivery log, its credentials are shredded. */
  deleteIntegration(id: string, scope?: Scope): Promise<boolean>;

  putJobMapping(integrationId: string, jobId: string, externalJobId: string, scope?: Scope): Promise<{ mapping: JobMapping; created: boolean }>;
  deleteJobMapping(integrationId: string, jobId: string, scope?: Scope): Promise<boolean>;
  findJobMapping(integrationId: string, jobId: string): Promise<string | null>;
  listJobMappings(integrationId: string, scope?: Scope): Promise<JobMapping[]>;

  /** Upsert the delivery's row; a delivered row is never changed again (`applied: false`). */
  recordDeliveryOutcome(outcome: DeliveryOutcome): Promise<{ delivery: DeliveryRecord; applied: boolean }>;
  /** Many outcomes in one statement; keys unique per call. `delivery` is null where a delivered row stood. */
  recordDeliveryOutcomes(outcomes: DeliveryOutcome[]): Promise<Array<{ delivery: DeliveryRecord | null; applied: boolean }>>;
  findDeliveries(keys: Array<{ integrationId: string; applicationId: string }>): Promise<DeliveryRecord[]>;
  findDelivery(integrationId: string, applicationId: string): Promise<DeliveryRecord | null>;
  /** Newest first (by creation), `limit` 1–200 (default 50). */
  listDeliveries(
    integrationId: string,
    opts?: { status?: DeliveryStatus | undefined; candidateEmail?: string | undefined; limit?: number | undefined; cursor?: string | undefined },
  ): Promise<DeliveryPage>;

  /** The token is returned once and stored only as its SHA-256. */
  createApiToken(input: { name: string; scope: TokenScope }): Promise<ApiToken & { token: string }>;
  authenticateToken(token: string): Promise<ApiToken | null>;
  revokeApiToken(id: string): Promise<boolean>;

  /** Re-encrypt every credential not sealed with the keyring's primary key. */
  rotateKeys(): Promise<{ rotated: number; keyId: string }>;
  /**
   * Start-up check: every key id in use is in the keyring and decrypts a sample row. Throws a
   * ConfigError naming ATS_RELAY_ENCRYPTION_KEYS otherwise.
   */
  assertCredentialsReadable(): Promise<void>;

  /** Local change listener (this process's writes); returns an unsubscribe function. */
  onChange(listener: (integrationId: string) => void): () => void;
}

export interface RepositoryOptions {
  pool: Pool;
  keyring: Keyring;
}

// --- row mapping ---------------------------------------------------------------------------------

interface IntegrationRow {
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

interface DeliveryRow {
  id: string;
  integration_id: string;
  application_id: string;
  event_id: string;
  status: DeliveryStatus;
  try_count: number;
  error_code: string | null;
  error_message: string | null;
  error_status: number | null;
  external_candidate_id: string | null;
  external_application_id: string | null;
  first_attempt_at: Date | null;
  last_attempt_at: Date | null;
  delivered_at: Date | null;
  created_at: Date;
  updated_at: Date;
  cursor_us?: string;
}

const INTEGRATION_COLUMNS = `id, company_id, platform, name, credentials_ciphertext, credentials_key_id, api_base_url, settings,
  enabled, allow_missing_resume, version, created_at, updated_at, last_delivery_at, last_error, last_error_at`;

const aadFor = (integrationId: string): string => `integration:${integrationId}`;

function toDelivery(r: DeliveryRow): DeliveryRecord {
  return {
    id: r.id,
    integrationId: r.integration_id,
    applicationId: r.application_id,
    eventId: r.event_id,
    status: r.status,
    tryCount: r.try_count,
    errorCode: r.error_code,
    errorMessage: r.error_message,
    errorStatus: r.error_status,
    externalCandidateId: r.external_candidate_id,
    externalApplicationId: r.external_application_id,
    firstAttemptAt: r.first_attempt_at,
    lastAttemptAt: r.last_attempt_at,
    deliveredAt: r.delivered_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export function formatTokenScope(scope: TokenScope): string {
  return scope.kind === 'admin' ? 'admin' : `company:${scope.companyId}`;
}

export function parseTokenScope(s: string): TokenScope | null {
  if (s === 'admin') return { kind: 'admin' };
  const m = /^company:(.+)$/.exec(s);
  return m ? { kind: 'company', companyId: m[1]! } : null;
}

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A cursor is opaque to callers: base64url of "<created_at in µs since epoch>.<id>". */
function encodeCursor(createdAtUs: string, id: string): string {
  return Buffer.from(`${createdAtUs}.${id}`, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): { us: string; id: string } {
  const m = /^(\d{1,20})\.([0-9a-f-]{36})$/i.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!m || !UUID.test(m[2]!)) throw new ValidationError([{ field: 'cursor', message: 'is not a cursor returned by this API' }]);
  return { us: m[1]!, id: m[2]! };
}

// --- the repository ------------------------------------------------------------------------------

export function createIntegrationRepository({ pool, keyring }: RepositoryOptions): IntegrationRepository {
  const listeners = new Set<(id: string) => void>();
  const changed = (id: string): void => {
    for (const l of listeners) {
      try {
        l(id);
      } catch {
        // A listener's failure must not fail the write that already committed.
      }
    }
  };

  function seal(integrationId: string, credentials: Credentials): { blob: Buffer; keyId: string } {
    const sealed = keyring.encrypt(JSON.stringify(credentials), aadFor(integrationId));
    return { blob: pack(sealed), keyId: sealed.keyId };
  }

  function open(row: Pick<IntegrationRow, 'id' | 'credentials_ciphertext' | 'credentials_key_id'>): Credentials {
    if (!row.credentials_ciphertext || !row.credentials_key_id) return {};
    try {
      const plain = keyring.decrypt(unpack(row.credentials_key_id, row.credentials_ciphertext), aadFor(row.id));
      return JSON.parse(plain.toString('utf8')) as Credentials;
    } catch (err) {
      if (!(err instanceof CryptoError)) throw err;
      throw new CryptoError(err.code, `integration ${row.id}: ${err.message}`, { retriable: false, cause: err, context: { ...err.context, integrationId: row.id } });
    }
  }

  function toRecord(r: IntegrationRow): IntegrationRecord {
    return {
      id: r.id,
      companyId: r.company_id,
      platform: r.platform,
      name: r.name,
      credentials: open(r),
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

  /** `AND company_id = $n` when scoped; pushes the parameter. */
  function scopeClause(scope: Scope | undefined, params: unknown[], column = 'company_id'): string {
    if (scope?.companyId === undefined) return '';
    params.push(scope.companyId);
    return ` AND ${column} = $${params.length}`;
  }

  async function getIntegration(id: string, scope?: Scope): Promise<IntegrationRecord | null> {
    if (!UUID.test(id)) return null;
    const params: unknown[] = [id];
    const { rows } = await pool.query<IntegrationRow>(
      `SELECT ${INTEGRATION_COLUMNS} FROM integrations WHERE id = $1 AND deleted_at IS NULL${scopeClause(scope, params)}`,
      params,
    );
    return rows[0] ? toRecord(rows[0]) : null;
  }

  /** Whether the integration exists (and is visible in the scope). */
  async function visible(id: string, scope?: Scope): Promise<boolean> {
    if (!UUID.test(id)) return false;
    const params: unknown[] = [id];
    const { rowCount } = await pool.query(`SELECT 1 FROM integrations WHERE id = $1 AND deleted_at IS NULL${scopeClause(scope, params)}`, params);
    return rowCount === 1;
  }

  async function findDelivery(integrationId: string, applicationId: string): Promise<DeliveryRecord | null> {
    if (!UUID.test(integrationId)) return null;
    const { rows } = await pool.query<DeliveryRow>('SELECT * FROM deliveries WHERE integration_id = $1 AND application_id = $2', [integrationId, applicationId]);
    return rows[0] ? toDelivery(rows[0]) : null;
  }

  /**
   * One statement for many outcomes (the dispatcher coalesces concurrent deliveries): an upsert per
   * (integration, application), never changing a delivered row, plus a throttled touch of each
   * integration's status fields. Keys must be unique within a call; rows go in key order so two
   * writers never lock the same rows in opposite orders.
   */
  async function recordDeliveryOutcomes(outcomes: DeliveryOutcome[]): Promise<Array<{ delivery: DeliveryRecord | null; applied: boolean }>> {
    if (outcomes.length === 0) return [];
    const keyOf = (integrationId: string, applicationId: string): string => `${integrationId}\u0000${applicationId}`;
    const ordered = [...outcomes].sort((a, b) => (keyOf(a.integrationId, a.applicationId) < keyOf(b.integrationId, b.applicationId) ? -1 : 1));
    if (new Set(ordered.map((o) => keyOf(o.integrationId, o.applicationId))).size !== ordered.length) {
      throw new Error('recordDeliveryOutcomes: each (integration, application) at most once per call');
    }
    const cols = {
      integration: [] as string[], application: [] as string[], event: [] as string[], status: [] as string[], tries: [] as number[],
      code: [] as (string | null)[], message: [] as (string | null)[], errStatus: [] as (number | null)[], cand: [] as (string | null)[],
      app: [] as (string | null)[], at: [] as Date[], lastError: [] as (string | null)[], email: [] as (Buffer | null)[],
    };
    for (const o of ordered) {
      const attempted = o.attempted ?? o.status !== 'pending';
      cols.integration.push(o.integrationId);
      cols.application.push(o.applicationId);
      cols.event.push(o.eventId);
      cols.status.push(o.status);
      cols.tries.push(attempted ? 1 : 0);
      cols.code.push(o.error?.code ?? null);
      cols.message.push(o.error ? truncate(o.error.message, 1_000) : null);
      cols.errStatus.push(o.error?.status ?? null);
      cols.cand.push(o.externalCandidateId ?? null);
      cols.app.push(o.externalApplicationId ?? null);
      cols.at.push(o.at ?? new Date());
      cols.lastError.push(o.error ? truncate(`${o.error.code}: ${o.error.message}`, 1_000) : null);
      cols.email.push(o.candidateEmail ? candidateEmailKey(o.candidateEmail) : null);
    }
    const { rows } = await pool.query<DeliveryRow>(
      `WITH input AS (
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[], $8::int[],
                              $9::text[], $10::text[], $11::timestamptz[], $12::text[], $13::bytea[])
           AS t(integration_id, application_id, event_id, status, tries, error_code, error_message, error_status,
                external_candidate_id, external_application_id, at, last_error, candidate_email_sha256)
       ), d AS (
         INSERT INTO deliveries AS cur (integration_id, application_id, event_id, status, try_count, error_code, error_message,
           error_status, external_candidate_id, external_application_id, first_attempt_at, last_attempt_at, delivered_at,
           candidate_email_sha256)
         SELECT integration_id, application_id, event_id, status, tries, error_code, error_message, error_status,
           external_candidate_id, external_application_id,
           CASE WHEN tries > 0 THEN at END, CASE WHEN tries > 0 THEN at END, CASE WHEN status = 'delivered' THEN at END,
           candidate_email_sha256
         FROM input
         ON CONFLICT (integration_id, application_id) DO UPDATE SET
           event_id = EXCLUDED.event_id,
           status = EXCLUDED.status,
           try_count = cur.try_count + EXCLUDED.try_count,
           error_code = EXCLUDED.error_code,
           error_message = EXCLUDED.error_message,
           error_status = EXCLUDED.error_status,
           external_candidate_id = COALESCE(EXCLUDED.external_candidate_id, cur.external_candidate_id),
           external_application_id = COALESCE(EXCLUDED.external_application_id, cur.external_application_id),
           first_attempt_at = COALESCE(cur.first_attempt_at, EXCLUDED.first_attempt_at),
           last_attempt_at = COALESCE(EXCLUDED.last_attempt_at, cur.last_attempt_at),
           delivered_at = COALESCE(EXCLUDED.delivered_at, cur.delivered_at),
           candidate_email_sha256 = COALESCE(EXCLUDED.candidate_email_sha256, cur.candidate_email_sha256),
           updated_at = now()
         WHERE cur.status <> 'delivered'
         RETURNING cur.*
       ), per_integration AS (
         SELECT i.integration_id,
                max(i.at) FILTER (WHERE i.status = 'delivered') AS delivered_at,
                max(i.at) FILTER (WHERE i.last_error IS NOT NULL) AS error_at,
                (array_agg(i.last_error ORDER BY i.at DESC) FILTER (WHERE i.last_error IS NOT NULL))[1] AS last_error
         FROM input i JOIN d ON d.integration_id = i.integration_id AND d.application_id = i.application_id
         GROUP BY i.integration_id
       ), touched AS (
         -- Throttled: every delivery touching its integration's one row would serialise them all on
         -- that row's lock; the status fields only need to be fresh to a few seconds.
         UPDATE integrations SET
           last_delivery_at = GREATEST(integrations.last_delivery_at, p.delivered_at),
           last_error = COALESCE(p.last_error, integrations.last_error),
           last_error_at = GREATEST(integrations.last_error_at, p.error_at)
         FROM per_integration p
         WHERE integrations.id = p.integration_id
           AND ((p.delivered_at IS NOT NULL AND (integrations.last_delivery_at IS NULL OR integrations.last_delivery_at < p.delivered_at - interval '5 seconds'))
             OR (p.error_at IS NOT NULL AND (integrations.last_error_at IS NULL OR integrations.last_error_at < p.error_at - interval '5 seconds')))
       )
       SELECT * FROM d`,
      [cols.integration, cols.application, cols.event, cols.status, cols.tries, cols.code, cols.message, cols.errStatus, cols.cand, cols.app, cols.at, cols.lastError, cols.email],
    );
    const applied = new Map(rows.map((r) => [keyOf(r.integration_id, r.application_id), toDelivery(r)]));
    return outcomes.map((o) => {
      const delivery = applied.get(keyOf(o.integrationId, o.applicationId)) ?? null;
      return { delivery, applied: delivery !== null };
    });
  }

  /** Many delivery-log rows in one query (unknown keys are simply absent). */
  async function findDeliveries(keys: Array<{ integrationId: string; applicationId: string }>): Promise<DeliveryRecord[]> {
    const valid = keys.filter((k) => UUID.test(k.integrationId));
    if (valid.length === 0) return [];
    const { rows } = await pool.query<DeliveryRow>(
      `SELECT d.* FROM deliveries d
       JOIN unnest($1::uuid[], $2::text[]) AS k(integration_id, application_id)
         ON d.integration_id = k.integration_id AND d.application_id = k.application_id`,
      [valid.map((k) => k.integrationId), valid.map((k) => k.applicationId)],
    );
    return rows.map(toDelivery);
  }

  return {
    async createIntegration(companyId, input) {
      const id = randomUUID();
      const { blob, keyId } = seal(id, input.credentials);
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
      if (!UUID.test(id)) throw notFound('integration', id);
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
        const { blob, keyId } = seal(id, changes.credentials);
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
      if (!UUID.test(id)) return false;
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

    async putJobMapping(integrationId, jobId, externalJobId, scope) {
      if (!UUID.test(integrationId)) throw notFound('integration', integrationId);
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
      if (!(await visible(integrationId, scope))) throw notFound('integration', integrationId);
      const { rowCount } = await pool.query(
        `DELETE FROM job_mappings WHERE integration_id = $1 AND job_id = $2 RETURNING pg_notify('${CHANGE_CHANNEL}', integration_id::text)`,
        [integrationId, jobId],
      );
      if (rowCount) changed(integrationId);
      return rowCount === 1;
    },

    async findJobMapping(integrationId, jobId) {
      if (!UUID.test(integrationId)) return null;
      const { rows } = await pool.query<{ external_job_id: string }>(
        'SELECT external_job_id FROM job_mappings WHERE integration_id = $1 AND job_id = $2',
        [integrationId, jobId],
      );
      return rows[0]?.external_job_id ?? null;
    },

    async listJobMappings(integrationId, scope) {
      if (!(await visible(integrationId, scope))) throw notFound('integration', integrationId);
      const { rows } = await pool.query<{ job_id: string; external_job_id: string; created_at: Date; updated_at: Date }>(
        'SELECT job_id, external_job_id, created_at, updated_at FROM job_mappings WHERE integration_id = $1 ORDER BY job_id',
        [integrationId],
      );
      return rows.map((r) => ({ integrationId, jobId: r.job_id, externalJobId: r.external_job_id, createdAt: r.created_at, updatedAt: r.updated_at }));
    },

    async recordDeliveryOutcome(o) {
      const [result] = await recordDeliveryOutcomes([o]);
      if (result!.delivery) return { delivery: result!.delivery, applied: true };
      const existing = await findDelivery(o.integrationId, o.applicationId);
      if (!existing) throw new RegistryError('not_found', `delivery ${o.integrationId}/${o.applicationId} vanished while being recorded`, { retriable: true });
      return { delivery: existing, applied: false };
    },

    recordDeliveryOutcomes,
    findDeliveries,

    findDelivery,

    async listDeliveries(integrationId, opts = {}) {
      const limit = Math.min(Math.max(opts.limit ?? 50, 1), 200);
      const params: unknown[] = [integrationId];
      let where = 'integration_id = $1';
      if (opts.status) {
        params.push(opts.status);
        where += ` AND status = $${params.length}`;
      }
      if (opts.candidateEmail) {
        params.push(candidateEmailKey(opts.candidateEmail));
        where += ` AND candidate_email_sha256 = $${params.length}`;
      }
      if (opts.cursor) {
        const c = decodeCursor(opts.cursor);
        params.push(c.us, c.id);
        where += ` AND (created_at, id) < (timestamptz 'epoch' + $${params.length - 1}::bigint * interval '1 microsecond', $${params.length}::uuid)`;
      }
      params.push(limit + 1);
      const { rows } = await pool.query<DeliveryRow>(
        `SELECT *, (extract(epoch FROM created_at) * 1000000)::bigint::text AS cursor_us FROM deliveries
         WHERE ${where} ORDER BY created_at DESC, id DESC LIMIT $${params.length}`,
        params,
      );
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        items: page.map(toDelivery),
        nextCursor: rows.length > limit && last ? encodeCursor(last.cursor_us!, last.id) : null,
      };
    },

    async createApiToken({ name, scope }) {
      const token = `atsr_${randomBytes(32).toString('base64url')}`;
      const { rows } = await pool.query<{ id: string; created_at: Date }>(
        'INSERT INTO api_tokens (token_hash, scope, name) VALUES ($1, $2, $3) RETURNING id, created_at',
        [hashToken(token), formatTokenScope(scope), name],
      );
      return { id: rows[0]!.id, name, scope, createdAt: rows[0]!.created_at, token };
    },

    async authenticateToken(token) {
      const { rows } = await pool.query<{ id: string; name: string; scope: string; created_at: Date }>(
        `UPDATE api_tokens SET last_used_at = now()
         WHERE token_hash = $1 AND revoked_at IS NULL
         RETURNING id, name, scope, created_at`,
        [hashToken(token)],
      );
      const row = rows[0];
      const scope = row ? parseTokenScope(row.scope) : null;
      return row && scope ? { id: row.id, name: row.name, scope, createdAt: row.created_at } : null;
    },

    async revokeApiToken(id) {
      if (!UUID.test(id)) return false;
      const { rowCount } = await pool.query('UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL', [id]);
      return rowCount === 1;
    },

    async rotateKeys() {
      const keyId = keyring.primaryKeyId;
      let rotated = 0;
      for (;;) {
        // One row per transaction, locked while it is re-sealed; SKIP LOCKED lets two rotators share the work.
        const client = await pool.connect();
        try {
          await client.query('BEGIN');
          const { rows } = await client.query<IntegrationRow>(
            `SELECT id, credentials_ciphertext, credentials_key_id FROM integrations
             WHERE credentials_key_id <> $1 AND credentials_ciphertext IS NOT NULL
             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`,
            [keyId],
          );
          const row = rows[0];
          if (!row) {
            await client.query('COMMIT');
            return { rotated, keyId };
          }
          const { blob } = seal(row.id, open(row));
          await client.query('UPDATE integrations SET credentials_ciphertext = $2, credentials_key_id = $3 WHERE id = $1', [row.id, blob, keyId]);
          await client.query('COMMIT');
          rotated += 1;
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw err;
        } finally {
          client.release();
        }
      }
    },

    async assertCredentialsReadable() {
      const { rows } = await pool.query<Pick<IntegrationRow, 'id' | 'credentials_ciphertext' | 'credentials_key_id'>>(
        `SELECT DISTINCT ON (credentials_key_id) id, credentials_ciphertext, credentials_key_id FROM integrations
         WHERE credentials_ciphertext IS NOT NULL ORDER BY credentials_key_id, created_at`,
      );
      for (const row of rows) {
        try {
          open(row);
        } catch (err) {
          if (err instanceof CryptoError) throw new ConfigError(KEYRING_VARIABLE, err.message);
          throw err;
        }
      }
    },

    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
