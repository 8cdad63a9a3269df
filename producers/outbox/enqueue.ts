/**
 * The write side of the transactional outbox: the backend calls `enqueueApplication` with the
 * client of its own open transaction, next to the write that accepts the application. Both commit
 * or neither does, so an accepted application always has its events waiting for the relay — a crash
 * between the commit and the publish loses nothing.
 *
 * The row holds the validated, enriched event as JSON (no secrets); the relay encodes it at publish
 * time. Enrichment reads the registry through the same transaction, so it sees a consistent state.
 */
import type { Queryable } from '../../lib/integrations/lookups.ts';
import { assertValidApplication, type ApplicationInput } from '../application-input.ts';
import { enrichApplication } from '../enrichment.ts';

/** The channel the outbox's insert trigger notifies (db/migrations/010_outbox.sql). */
export const OUTBOX_CHANNEL = 'ats_relay_outbox';
/** Default topic of enqueued events: the default of TOPIC_APPLICATIONS. */
export const DEFAULT_APPLICATIONS_TOPIC = 'ats.applications';

export interface EnqueueOptions {
  /** Topic the relay publishes the rows to (config.topics.applications). */
  topic?: string;
  /** Clock for occurredAt when the input has none (tests). */
  now?: number;
}

export interface EnqueuedEvent {
  outboxId: string;
  eventId: string;
  integrationId: string;
}

export type EnqueueResult =
  | { status: 'enqueued'; events: EnqueuedEvent[]; unmapped: string[] }
  | { status: 'no-integration'; companyId: string }
  | { status: 'no-job-mapping'; companyId: string; jobId: string; integrationIds: string[] };

/**
 * Validate (throws InvalidInputError, nothing written), enrich, and insert one outbox row per event in
 * one statement. `db` must be the client of the caller's transaction for the atomicity to hold.
 */
export async function enqueueApplication(db: Queryable, input: ApplicationInput, opts: EnqueueOptions = {}): Promise<EnqueueResult> {
  const app = assertValidApplication(input, opts.now);
  const enrichment = await enrichApplication(db, app);
  if (enrichment.status === 'no-integration') return { status: 'no-integration', companyId: app.companyId };
  if (enrichment.status === 'no-job-mapping') {
    return { status: 'no-job-mapping', companyId: app.companyId, jobId: app.jobId, integrationIds: enrichment.integrationIds };
  }
  const topic = opts.topic ?? DEFAULT_APPLICATIONS_TOPIC;
  const { events } = enrichment;
  const { rows } = await db.query<{ id: string; event_id: string }>(
    `INSERT INTO outbox (event_id, topic, key, payload)
     SELECT e.event_id, $1, $2, e.payload FROM unnest($3::uuid[], $4::jsonb[]) WITH ORDINALITY AS e(event_id, payload, n)
     ORDER BY e.n
     RETURNING id, event_id`,
    [topic, app.applicationId, events.map((e) => e.eventId), events.map((e) => JSON.stringify(e))],
  );
  const idOf = new Map(rows.map((r) => [r.event_id, r.id]));
  return {
    status: 'enqueued',
    events: events.map((e) => ({ outboxId: idOf.get(e.eventId)!, eventId: e.eventId, integrationId: e.integrationId })),
    unmapped: enrichment.unmapped,
  };
}
