/**
 * Accept a verified webhook: one PostgreSQL transaction records it once (unique dedupe key per
 * integration) and, when it is a status change of an application we delivered, writes the
 * ApplicationStatusChanged event to the outbox, where the relay publishes it to
 * `ats.application-status`. Nothing here calls out (no Kafka, no registry, no ATS): the vendor
 * gets its answer as soon as the commit is done, and Kafka being down only delays publishing.
 *
 *   signal            resolved through the delivery log?   newer status already published?   outcome
 *   ignored           –                                    –                                  ignored     (recorded only)
 *   status            no                                   –                                  unmatched   (+ inbound_unmatched row, payload kept)
 *   status            yes                                  yes                                superseded  (out-of-order delivery, not published)
 *   status            yes                                  no                                 published   (+ outbox row)
 *   same dedupe key again                                                                     duplicate   (nothing written)
 *
 * Dedupe key: the vendor's event id where it is stable across retries (Lever `id`, Ashby
 * `webhookActionId`, generic `eventId`), otherwise the SHA-256 of the signed body (Greenhouse's
 * event id is documented as per delivery; Workable documents none).
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Pool } from '../../lib/db.ts';
import type { ApplicationStatusChanged } from '../../lib/inbound-events.ts';
import type { Integration } from '../../registry/integration.ts';
import { insertOutboxRows } from '../outbox/enqueue.ts';
import type { WebhookSignal } from './interpret.ts';

export type InboxOutcome = 'published' | 'unmatched' | 'ignored' | 'superseded' | 'duplicate';

export interface InboxResult {
  outcome: InboxOutcome;
  applicationId?: string;
  eventId?: string;
}

export interface InboxOptions {
  pool: Pool;
  /** config.inbound.statusTopic */
  statusTopic: string;
}

export function dedupeKey(integration: Pick<Integration, 'platform'>, signal: WebhookSignal, body: Buffer): string {
  if (signal.vendorEventId && integration.platform !== 'greenhouse' && integration.platform !== 'workable') return `id:${signal.vendorEventId}`;
  return `sha256:${createHash('sha256').update(body).digest('hex')}`;
}

export async function acceptWebhook(
  opts: InboxOptions,
  integration: Pick<Integration, 'id' | 'companyId' | 'platform'>,
  signal: WebhookSignal,
  body: Buffer,
  json: unknown,
  now = Date.now(),
): Promise<InboxResult> {
  const key = dedupeKey(integration, signal, body);
  const client = await opts.pool.connect();
  try {
    await client.query('BEGIN');
    let outcome: Exclude<InboxOutcome, 'duplicate'> = 'ignored';
    let applicationId: string | undefined;
    if (signal.kind === 'status') {
      // Prefer the application id (a candidate may have applied to several jobs), else the candidate id.
      const { rows } = await client.query<{ application_id: string }>(
        `SELECT application_id FROM deliveries
          WHERE integration_id = $1 AND (external_application_id = $2 OR ($3::text IS NOT NULL AND external_candidate_id = $3))
          ORDER BY (external_application_id = $2) DESC, delivered_at DESC NULLS LAST LIMIT 1`,
        [integration.id, signal.externalApplicationId, signal.externalCandidateId],
      );
      applicationId = rows[0]?.application_id;
      outcome = applicationId ? 'published' : 'unmatched';
      if (applicationId && signal.occurredAt !== null) {
        const newer = await client.query(
          `SELECT 1 FROM inbound_webhooks WHERE integration_id = $1 AND application_id = $2 AND outcome = 'published'
              AND occurred_at > to_timestamp($3::double precision / 1000) LIMIT 1`,
          [integration.id, applicationId, signal.occurredAt],
        );
        if (newer.rowCount) outcome = 'superseded';
      }
    }
    const status = signal.kind === 'status' ? signal : undefined;
    const eventId = outcome === 'published' ? randomUUID() : null;
    const inserted = await client.query<{ id: string }>(
      `INSERT INTO inbound_webhooks (integration_id, dedupe_key, vendor_event, outcome, application_id, external_application_id, status, raw_stage, event_id, occurred_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, to_timestamp($10::double precision / 1000))
       ON CONFLICT (integration_id, dedupe_key) DO NOTHING RETURNING id`,
      [integration.id, key, signal.vendorEvent, outcome, applicationId ?? null, status?.externalApplicationId ?? null, status?.status ?? null, status?.rawStage ?? null, eventId, status?.occurredAt ?? now],
    );
    const inboundId = inserted.rows[0]?.id;
    if (!inboundId) {
      await client.query('ROLLBACK');
      return { outcome: 'duplicate' };
    }
    if (outcome === 'published' && status && applicationId && eventId) {
      const event: ApplicationStatusChanged = {
        eventId,
        occurredAt: status.occurredAt ?? now,
        receivedAt: now,
        applicationId,
        companyId: integration.companyId,
        integrationId: integration.id,
        platform: integration.platform,
        status: status.status,
        rawStage: status.rawStage,
        vendorEvent: status.vendorEvent,
        vendorEventId: status.vendorEventId,
        externalApplicationId: status.externalApplicationId,
        externalCandidateId: status.externalCandidateId,
        reason: status.reason,
      };
      await insertOutboxRows(client, [{ eventId, topic: opts.statusTopic, key: applicationId, payload: event }]);
    } else if (outcome === 'unmatched' && status) {
      await client.query(
        `INSERT INTO inbound_unmatched (inbound_id, integration_id, vendor_event, external_candidate_id, external_application_id, status, raw_stage, payload)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [inboundId, integration.id, status.vendorEvent, status.externalCandidateId, status.externalApplicationId, status.status, status.rawStage, JSON.stringify(json)],
      );
    }
    await client.query('COMMIT');
    return { outcome, ...(applicationId ? { applicationId } : {}), ...(eventId ? { eventId } : {}) };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
