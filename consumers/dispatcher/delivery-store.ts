/**
 * The delivery log's table (`deliveries`): one row per (integration, application) with its latest
 * status, tries, error and the ATS's ids. The dispatcher writes it (through delivery-log.ts, which
 * coalesces concurrent calls into these statements); the registry's HTTP API and the console read
 * it, and delivery-stats.ts summarises it. Every SQL statement on `deliveries` but the counts lives here.
 */
import { hash } from 'node:crypto';
import type { Pool } from '../../lib/db.ts';
import type { ErrorCode } from '../../lib/error-codes.ts';
import { truncate } from '../../lib/errors.ts';
import { RegistryError, ValidationError } from '../../registry/errors.ts';
import { isUuid } from '../../registry/scope.ts';
import type { RecordCoordinates } from './delivery-claims.ts';

export const DELIVERY_STATUSES = ['pending', 'delivered', 'retrying', 'dead_lettered'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

export interface DeliveryRecord {
  id: string;
  integrationId: string;
  applicationId: string;
  eventId: string;
  status: DeliveryStatus;
  tryCount: number;
  errorCode: ErrorCode | null;
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
  error?: { code: ErrorCode; message: string; status?: number | undefined } | undefined;
  externalCandidateId?: string | undefined;
  externalApplicationId?: string | undefined;
  /** The candidate's e-mail: kept only as candidateEmailKey(), so a delivery can be found by it. */
  candidateEmail?: string | undefined;
  /** When the attempt finished (default: now). */
  at?: Date;
  /**
   * The holder of this (integration, application)'s lease (delivery-claims.ts): the same statement
   * gives it back, so a delivery takes one round trip to end instead of two, and the lease ends
   * exactly when the outcome is durable. A lease held by anyone else is left alone.
   */
  releaseLease?: string | undefined;
}

/** One string per (integration, application), for maps and sets keyed by both (the delivery log's key). */
export const applicationKey = (integrationId: string, applicationId: string): string => `${integrationId}\u0000${applicationId}`;

/** How the delivery log keys a candidate's e-mail: SHA-256 of the trimmed, lower-cased address. */
export function candidateEmailKey(email: string): Buffer {
  return hash('sha256', email.trim().toLowerCase(), 'buffer'); // one-shot: no Hash object per delivery
}

export interface DeliveryPage {
  items: DeliveryRecord[];
  /** Pass back as `cursor` for the next (older) page; null at the end. */
  nextCursor: string | null;
}

export interface DeliveryStore {
  /** Upsert the delivery's row; a delivered row is never changed again (`applied: false`). */
  recordDeliveryOutcome(outcome: DeliveryOutcome): Promise<{ delivery: DeliveryRecord; applied: boolean }>;
  /** Many outcomes in one statement; keys unique per call. `delivery` is null where a delivered row stood. */
  recordDeliveryOutcomes(outcomes: DeliveryOutcome[]): Promise<Array<{ delivery: DeliveryRecord | null; applied: boolean }>>;
  /** The same statement, nothing read back (callers that only need it durable). */
  writeDeliveryOutcomes(outcomes: DeliveryOutcome[]): Promise<void>;
  findDeliveries(keys: Array<{ integrationId: string; applicationId: string }>): Promise<DeliveryRecord[]>;
  /**
   * The dispatcher's first look at a record, one statement for both questions: was this consumed
   * record already routed onward by its group (delivery-claims.ts's routes), and what does the
   * delivery log hold for its application. Answers in the order of `keys`.
   */
  findDeliveriesAndRoutes(keys: Array<RecordCoordinates & { integrationId: string; applicationId: string }>): Promise<Array<{ routed: boolean; delivery: DeliveryRecord | null }>>;
  findDelivery(integrationId: string, applicationId: string): Promise<DeliveryRecord | null>;
  /** Newest first (by creation), `limit` 1–200 (default 50). */
  listDeliveries(
    integrationId: string,
    opts?: { status?: DeliveryStatus | undefined; candidateEmail?: string | undefined; limit?: number | undefined; cursor?: string | undefined },
  ): Promise<DeliveryPage>;
}

interface DeliveryRow {
  id: string;
  integration_id: string;
  application_id: string;
  event_id: string;
  status: DeliveryStatus;
  try_count: number;
  error_code: ErrorCode | null;
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

/** A cursor is opaque to callers: base64url of "<created_at in µs since epoch>.<id>". */
function encodeCursor(createdAtUs: string, id: string): string {
  return Buffer.from(`${createdAtUs}.${id}`, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): { us: string; id: string } {
  const m = /^(\d{1,20})\.([0-9a-f-]{36})$/i.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!m || !isUuid(m[2]!)) throw new ValidationError([{ field: 'cursor', message: 'is not a cursor returned by this API' }]);
  return { us: m[1]!, id: m[2]! };
}

export function createDeliveryStore(pool: Pool): DeliveryStore {
  async function findDelivery(integrationId: string, applicationId: string): Promise<DeliveryRecord | null> {
    if (!isUuid(integrationId)) return null;
    const { rows } = await pool.query<DeliveryRow>('SELECT * FROM deliveries WHERE integration_id = $1 AND application_id = $2', [integrationId, applicationId]);
    return rows[0] ? toDelivery(rows[0]) : null;
  }

  /**
   * One statement for many outcomes (the dispatcher coalesces concurrent deliveries): an upsert per
   * (integration, application), never changing a delivered row, plus a throttled touch of each
   * integration's status fields, plus the release of the leases named by `releaseLease`. Keys must
   * be unique within a call; rows go in key order so two writers never lock the same rows in opposite
   * orders.
   */
  async function recordDeliveryOutcomes(outcomes: DeliveryOutcome[]): Promise<Array<{ delivery: DeliveryRecord | null; applied: boolean }>> {
    if (outcomes.length === 0) return [];
    const rows = await upsertOutcomes(outcomes, 'SELECT * FROM d');
    const applied = new Map(rows.map((r) => [applicationKey(r.integration_id, r.application_id), toDelivery(r)]));
    return outcomes.map((o) => {
      const delivery = applied.get(applicationKey(o.integrationId, o.applicationId)) ?? null;
      return { delivery, applied: delivery !== null };
    });
  }

  /**
   * The upsert without reading the rows back: the dispatcher, which writes a coalesced batch per
   * statement and needs none of them, no longer has every row sent back and parsed (six timestamps
   * each) for nothing.
   */
  async function writeDeliveryOutcomes(outcomes: DeliveryOutcome[]): Promise<void> {
    if (outcomes.length > 0) await upsertOutcomes(outcomes, 'SELECT count(*) FROM d');
  }

  /** One statement for many outcomes, ending with `tail` (a query over the upserted rows, `d`). */
  async function upsertOutcomes(outcomes: DeliveryOutcome[], tail: string): Promise<DeliveryRow[]> {
    const ordered = [...outcomes].sort((a, b) => (applicationKey(a.integrationId, a.applicationId) < applicationKey(b.integrationId, b.applicationId) ? -1 : 1));
    if (new Set(ordered.map((o) => applicationKey(o.integrationId, o.applicationId))).size !== ordered.length) {
      throw new Error('delivery outcomes: each (integration, application) at most once per statement');
    }
    const cols = {
      integration: [] as string[], application: [] as string[], event: [] as string[], status: [] as string[], tries: [] as number[],
      code: [] as (string | null)[], message: [] as (string | null)[], errStatus: [] as (number | null)[], cand: [] as (string | null)[],
      app: [] as (string | null)[], at: [] as Date[], lastError: [] as (string | null)[], email: [] as (Buffer | null)[],
      holder: [] as (string | null)[],
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
      cols.holder.push(o.releaseLease ?? null);
    }
    const { rows } = await pool.query<DeliveryRow>(
      `WITH input AS (
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[], $8::int[],
                              $9::text[], $10::text[], $11::timestamptz[], $12::text[], $13::bytea[], $14::text[])
           AS t(integration_id, application_id, event_id, status, tries, error_code, error_message, error_status,
                external_candidate_id, external_application_id, at, last_error, candidate_email_sha256, lease_holder)
       ), released AS (
         -- Whether or not the upsert applied (a delivered row is never changed): the attempt is over.
         -- Only our own holder's row: a lease another process took after ours expired stays its own.
         DELETE FROM delivery_leases l USING input i
         WHERE i.lease_holder IS NOT NULL
           AND l.integration_id = i.integration_id::text AND l.application_id = i.application_id AND l.holder = i.lease_holder
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
       ${tail}`,
      [cols.integration, cols.application, cols.event, cols.status, cols.tries, cols.code, cols.message, cols.errStatus, cols.cand, cols.app, cols.at, cols.lastError, cols.email, cols.holder],
    );
    return rows;
  }

  /** Many delivery-log rows in one query (unknown keys are simply absent). */
  async function findDeliveries(keys: Array<{ integrationId: string; applicationId: string }>): Promise<DeliveryRecord[]> {
    const valid = keys.filter((k) => isUuid(k.integrationId));
    if (valid.length === 0) return [];
    const { rows } = await pool.query<DeliveryRow>(
      `SELECT d.* FROM deliveries d
       JOIN unnest($1::uuid[], $2::text[]) AS k(integration_id, application_id)
         ON d.integration_id = k.integration_id AND d.application_id = k.application_id`,
      [valid.map((k) => k.integrationId), valid.map((k) => k.applicationId)],
    );
    return rows.map(toDelivery);
  }

  async function findDeliveriesAndRoutes(keys: Array<RecordCoordinates & { integrationId: string; applicationId: string }>): Promise<Array<{ routed: boolean; delivery: DeliveryRecord | null }>> {
    if (keys.length === 0) return [];
    const { rows } = await pool.query<DeliveryRow & { n: string; routed: boolean }>(
      `SELECT k.n, r.record_offset IS NOT NULL AS routed, d.*
       FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[], $5::uuid[], $6::text[]) WITH ORDINALITY AS k(g, t, p, o, i, a, n)
       LEFT JOIN delivery_routes r ON r.topic = k.t AND r.partition = k.p AND r.record_offset = k.o AND r.consumer_group = k.g
       LEFT JOIN deliveries d ON d.integration_id = k.i AND d.application_id = k.a`,
      [
        keys.map((k) => k.group), keys.map((k) => k.topic), keys.map((k) => k.partition), keys.map((k) => k.offset),
        // An id that is not a uuid has no delivery row (and would fail the cast): it only asks about the route.
        keys.map((k) => (isUuid(k.integrationId) ? k.integrationId : null)), keys.map((k) => k.applicationId),
      ],
    );
    const out: Array<{ routed: boolean; delivery: DeliveryRecord | null }> = keys.map(() => ({ routed: false, delivery: null }));
    for (const r of rows) out[Number(r.n) - 1] = { routed: r.routed, delivery: r.id ? toDelivery(r) : null };
    return out;
  }

  return {
    findDeliveriesAndRoutes,
    async recordDeliveryOutcome(o) {
      const [result] = await recordDeliveryOutcomes([o]);
      if (result!.delivery) return { delivery: result!.delivery, applied: true };
      const existing = await findDelivery(o.integrationId, o.applicationId);
      if (!existing) throw new RegistryError('not_found', `delivery ${o.integrationId}/${o.applicationId} vanished while being recorded`, { retriable: true });
      return { delivery: existing, applied: false };
    },

    recordDeliveryOutcomes,
    writeDeliveryOutcomes,
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
  };
}
