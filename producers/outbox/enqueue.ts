/**
 * The write side of the transactional outbox: the backend calls `enqueueApplication` with the
 * client of its own open transaction, next to the write that accepts the application. Both commit
 * or neither does, so an accepted application always has its events waiting for the relay — a crash
 * between the commit and the publish loses nothing.
 *
 * The row holds the record value ready to send (Confluent-framed Avro) when the caller passes the
 * topic's codec and that codec already knows the schema id; otherwise the validated, enriched event as
 * JSON, which the relay encodes at publish time. Either way there are no secrets in it, and the insert
 * never waits on the Schema Registry. Enrichment reads the registry through the same transaction, so
 * it sees a consistent state.
 */
import type { ApplicationSubmitted } from '../../lib/application.ts';
import type { Queryable } from '../../lib/integrations/lookups.ts';
import type { EventCodec } from '../../lib/serde.ts';
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
  /**
   * The codec of `topic` (one per process, long-lived): once it knows the schema id, rows carry the
   * encoded record and the relay only sends it. Without it, rows carry JSON.
   */
  codec?: EventCodec;
}

/** One outbox row to write: the record value when it could be encoded without waiting, else the JSON event. */
export interface OutboxRowInput {
  eventId: string;
  topic: string;
  /** Record key: the application id. */
  key: string;
  value?: Buffer;
  payload?: ApplicationSubmitted;
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
  if (opts.codec && opts.codec.subject !== `${topic}-value`) throw new Error(`enqueueApplication: codec of ${opts.codec.subject} for topic ${topic}`);
  const { events } = enrichment;
  const rows = await insertOutboxRows(
    db,
    events.map((e) => {
      const value = opts.codec?.encodeIfRegistered(e);
      return { eventId: e.eventId, topic, key: app.applicationId, ...(value ? { value } : { payload: e }) };
    }),
  );
  const idOf = new Map(rows.map((r) => [r.event_id, r.id]));
  return {
    status: 'enqueued',
    events: events.map((e) => ({ outboxId: idOf.get(e.eventId)!, eventId: e.eventId, integrationId: e.integrationId })),
    unmapped: enrichment.unmapped,
  };
}

/**
 * Insert outbox rows in one statement, in the given order (ids follow it, and so does publishing).
 * The one place that writes the outbox; returns each row's id.
 */
export async function insertOutboxRows(db: Queryable, rows: readonly OutboxRowInput[]): Promise<Array<{ id: string; event_id: string }>> {
  const { rows: inserted } = await db.query<{ id: string; event_id: string }>(
    `INSERT INTO outbox (event_id, topic, key, value, payload)
     SELECT e.event_id, e.topic, e.key, e.value, e.payload
       FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[], $5::jsonb[]) WITH ORDINALITY AS e(event_id, topic, key, value, payload, n)
      ORDER BY e.n
     RETURNING id, event_id`,
    [
      rows.map((r) => r.eventId),
      rows.map((r) => r.topic),
      rows.map((r) => r.key),
      rows.map((r) => r.value ?? null),
      rows.map((r) => (r.value ? null : JSON.stringify(r.payload))),
    ],
  );
  return inserted;
}
