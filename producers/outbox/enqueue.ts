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
import type { Queryable } from '../../registry/lookups.ts';
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
  /** The event as JSON (ApplicationSubmitted, or the way back's ApplicationStatusChanged / JobSynced). */
  payload?: object;
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
 * The one place that writes the outbox; returns each row's id. Values go as bound parameters, so the
 * record bytes travel in binary, not hex-escaped inside an array literal.
 */
export async function insertOutboxRows(db: Queryable, rows: readonly OutboxRowInput[]): Promise<Array<{ id: string; event_id: string }>> {
  const inserted: Array<{ id: string; event_id: string }> = [];
  // PostgreSQL takes at most 65,535 parameters per statement: 5 per row.
  for (let from = 0; from < rows.length; from += 10_000) {
    const slice = rows.slice(from, from + 10_000);
    const params: unknown[] = [];
    const tuples = slice.map((r) => {
      const n = params.push(r.eventId, r.topic, r.key, r.value ?? null, r.value ? null : JSON.stringify(r.payload));
      return `($${n - 4}::uuid, $${n - 3}, $${n - 2}, $${n - 1}::bytea, $${n}::jsonb)`;
    });
    const { rows: ids } = await db.query<{ id: string; event_id: string }>(
      `INSERT INTO outbox (event_id, topic, key, value, payload) VALUES ${tuples.join(', ')} RETURNING id, event_id`,
      params,
    );
    inserted.push(...ids);
  }
  return inserted;
}
