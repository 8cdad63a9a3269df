/**
 * A valid application + the company's integrations → the events to publish: one per enabled
 * integration whose job mapping knows the job. Shared by the direct publisher and the outbox, so
 * both produce the same events for the same input.
 */
import { hash } from 'node:crypto';
import type { ApplicationSubmitted } from '../lib/application.ts';
import { findDeliveryTargets, type DeliveryTarget, type Queryable } from '../registry/lookups.ts';
import type { ValidApplication } from './application-input.ts';

/** Namespace of ats-relay's name-based event ids (RFC 9562 UUIDv5). */
const EVENT_ID_NAMESPACE = Buffer.from('5f0c6a3e9d8b4c1e8a7f2b3c4d5e6f70', 'hex');

/**
 * The event id of an application for one integration: a UUIDv5 of both ids. Stable, so a backend
 * that retries a publish (or an outbox row published twice) yields the same id and consumers drop
 * the duplicate.
 */
export function eventIdFor(applicationId: string, integrationId: string): string {
  // One-shot hash to hex (no Hash object, no digest buffer): a third cheaper, and it runs per event.
  const hex = hash('sha1', Buffer.concat([EVENT_ID_NAMESPACE, Buffer.from(`${applicationId}\u0000${integrationId}`, 'utf8')]), 'hex');
  const version = '5';
  const variant = ((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16); // RFC variant: 10xx
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${version}${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

export type Enrichment =
  | { status: 'ok'; events: ApplicationSubmitted[]; /** Enabled integrations with no mapping for the job (skipped). */ unmapped: string[] }
  | { status: 'no-integration' }
  | { status: 'no-job-mapping'; integrationIds: string[] };

/** Where the company's delivery targets come from: the database (default), or a cache of it (producers/target-cache.ts). */
export type TargetLookup = (companyId: string, jobId: string) => Promise<DeliveryTarget[]>;

/**
 * `lookup` replaces the query for callers that cache it (the direct publisher); the outbox reads
 * through its caller's transaction instead, so what it enqueues matches what that transaction sees.
 */
export async function enrichApplication(db: Queryable, app: ValidApplication, lookup?: TargetLookup): Promise<Enrichment> {
  const targets = lookup ? await lookup(app.companyId, app.jobId) : await findDeliveryTargets(db, app.companyId, app.jobId);
  if (targets.length === 0) return { status: 'no-integration' };
  const mapped = targets.filter((t) => t.atsJobId !== null);
  const unmapped = targets.filter((t) => t.atsJobId === null).map((t) => t.integrationId);
  if (mapped.length === 0) return { status: 'no-job-mapping', integrationIds: unmapped };
  const events = mapped.map(
    (t): ApplicationSubmitted => ({
      eventId: eventIdFor(app.applicationId, t.integrationId),
      occurredAt: app.occurredAt,
      applicationId: app.applicationId,
      companyId: app.companyId,
      integrationId: t.integrationId,
      platform: t.platform,
      jobId: app.jobId,
      atsJobId: t.atsJobId!,
      candidate: app.candidate,
      resume: app.resume,
      coverLetter: app.coverLetter,
      screeningAnswers: app.screeningAnswers,
      source: app.source,
      consent: app.consent,
      extras: app.extras,
    }),
  );
  return { status: 'ok', events, unmapped };
}
