/**
 * What a verified webhook says, per vendor, in one shape: which application (the ATS's ids), the
 * normalised status, the vendor's raw stage, when. Events that are not about an application's
 * status (pings, job events, deletions, Lever unarchive) are `ignored` — accepted, recorded, not
 * published.
 *
 * Normalisation (../shared/docs/ats-inbound.md §7; stage names are free text per customer, so the
 * name rules are judgement calls, listed here as the table they are):
 *
 *   signal                                                        → status
 *   hire (GH hire_candidate / status hired, Lever candidateHired,
 *     Workable hired_at / stage "hired", Ashby Hired / candidateHire) → hired
 *   rejection by the candidate (GH "They rejected us", Lever/Workable
 *     reason "withdr…" / "declined", Ashby RejectedByCandidate)   → withdrawn
 *   any other rejection / archive / disqualification              → rejected
 *   stage name: offer                                             → offer
 *   stage name: interview, onsite, face to face, assessment, take home, panel, technical → interview
 *   stage name: screen, phone                                     → screening
 *   stage name: new, applied, application review, lead, sourced   → applied
 *   Ashby stage type Lead / PreInterviewScreen / Active / Offer   → applied / screening / interview / offer
 *   any other stage (custom mid-pipeline stages)                  → interview
 */
import type { Platform } from '../../registry/integration.ts';
import type { ApplicationStatus } from '../../lib/inbound-events.ts';
import { epochMs, type Headers } from './signatures.ts';

export interface StatusSignal {
  kind: 'status';
  vendorEvent: string;
  vendorEventId: string | null;
  externalApplicationId: string | null;
  externalCandidateId: string | null;
  status: ApplicationStatus;
  rawStage: string | null;
  reason: string | null;
  /** Epoch ms when the ATS says it happened; null when the webhook does not tell. */
  occurredAt: number | null;
}

export interface IgnoredSignal {
  kind: 'ignored';
  vendorEvent: string;
  vendorEventId: string | null;
}

export type WebhookSignal = StatusSignal | IgnoredSignal;

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const str = (v: unknown): string | null => (typeof v === 'string' && v ? v : typeof v === 'number' ? String(v) : null);

export function statusFromStageName(name: string | null): ApplicationStatus {
  const n = (name ?? '').toLowerCase().replace(/[-_]+/g, ' ');
  if (/offer/.test(n)) return 'offer';
  if (/\bhired?\b/.test(n)) return 'hired';
  if (/interview|on ?site|face to face|assessment|take home|panel|technical/.test(n)) return 'interview';
  if (/screen|phone/.test(n)) return 'screening';
  if (/\bnew\b|applied|application|review|lead|sourced|applicant/.test(n)) return 'applied';
  return 'interview';
}

const withdrew = (reason: string | null): boolean => /withdr|declin|they rejected us/i.test(reason ?? '');

function greenhouse(json: Obj, headers: Headers): WebhookSignal {
  const action = str(json.action) ?? 'unknown';
  const eventIdHeader = headers['greenhouse-event-id'];
  const vendorEventId = str(Array.isArray(eventIdHeader) ? eventIdHeader[0] : eventIdHeader);
  const app = obj(obj(json.payload).application);
  const relevant = ['candidate_stage_change', 'hire_candidate', 'reject_candidate', 'new_candidate_application', 'application_updated', 'offer_created', 'offer_approved'];
  if (!relevant.includes(action) || str(app.id) === null) return { kind: 'ignored', vendorEvent: action, vendorEventId };
  const stage = str(obj(app.current_stage).name);
  const rejection = obj(app.rejection_reason);
  const reason = str(rejection.name);
  const rejectionType = str(obj(rejection.type).name);
  let status: ApplicationStatus;
  if (action === 'hire_candidate' || app.status === 'hired') status = 'hired';
  else if (action === 'reject_candidate' || app.status === 'rejected') status = withdrew(rejectionType) ? 'withdrawn' : 'rejected';
  else if (action.startsWith('offer_')) status = 'offer';
  else if (action === 'new_candidate_application') status = 'applied';
  else status = statusFromStageName(stage);
  return {
    kind: 'status',
    vendorEvent: action,
    vendorEventId,
    externalApplicationId: str(app.id),
    externalCandidateId: str(obj(app.candidate).id),
    status,
    rawStage: stage,
    reason: status === 'rejected' || status === 'withdrawn' ? (reason ?? rejectionType) : null,
    occurredAt: epochMs(app.last_activity_at) ?? epochMs(app.rejected_at) ?? null,
  };
}

/** Lever's fixed stages have readable ids in every account; custom ones are UUIDs (→ interview). */
function leverStage(stageId: string | null): ApplicationStatus {
  if (!stageId) return 'interview';
  if (/^(lead|applicant)-/.test(stageId)) return 'applied';
  if (stageId === 'offer') return 'offer';
  return statusFromStageName(stageId);
}

function lever(json: Obj): WebhookSignal {
  const event = str(json.event) ?? 'unknown';
  const vendorEventId = str(json.id);
  const data = obj(json.data);
  const opportunityId = str(data.opportunityId) ?? str(data.candidateId);
  if (!opportunityId) return { kind: 'ignored', vendorEvent: event, vendorEventId };
  const base = { kind: 'status' as const, vendorEvent: event, vendorEventId, externalApplicationId: opportunityId, externalCandidateId: str(data.contactId), occurredAt: epochMs(json.triggeredAt) ?? null };
  switch (event) {
    case 'candidateStageChange': {
      const stage = str(data.toStageId);
      return { ...base, status: leverStage(stage), rawStage: stage, reason: null };
    }
    case 'candidateHired':
      return { ...base, status: 'hired', rawStage: null, reason: null };
    case 'applicationCreated':
      return { ...base, status: 'applied', rawStage: null, reason: null };
    case 'candidateArchiveChange': {
      // Unarchived: the new status depends on the stage, which the payload does not carry.
      const archived = obj(data.toArchived);
      if (!data.toArchived) return { kind: 'ignored', vendorEvent: event, vendorEventId };
      const reason = str(archived.reason) ?? str(archived.reasonText);
      const status: ApplicationStatus = /^hired$/i.test(reason ?? '') ? 'hired' : withdrew(reason) ? 'withdrawn' : 'rejected';
      return { ...base, status, rawStage: null, reason };
    }
    default:
      return { kind: 'ignored', vendorEvent: event, vendorEventId };
  }
}

function workable(json: Obj): WebhookSignal {
  const event = str(json.event_type) ?? str(json.event) ?? 'unknown';
  const vendorEventId = str(json.id);
  const data = obj(json.data);
  const candidateId = str(data.id);
  if (!['candidate_moved', 'candidate_created'].includes(event) || !candidateId) return { kind: 'ignored', vendorEvent: event, vendorEventId };
  const stage = str(data.stage);
  const reason = str(data.disqualification_reason);
  let status: ApplicationStatus;
  if (data.disqualified === true) status = withdrew(reason) ? 'withdrawn' : 'rejected';
  else if (str(data.hired_at) || /^hired$/i.test(stage ?? '')) status = 'hired';
  else if (event === 'candidate_created') status = 'applied';
  else status = statusFromStageName(stage);
  return {
    kind: 'status',
    vendorEvent: event,
    vendorEventId,
    // The Workable connector records the candidate id as both ids (one candidate per job there).
    externalApplicationId: candidateId,
    externalCandidateId: candidateId,
    status,
    rawStage: stage,
    reason: status === 'rejected' || status === 'withdrawn' ? reason : null,
    occurredAt: epochMs(data.updated_at) ?? epochMs(json.fired_at) ?? null,
  };
}

function ashby(json: Obj): WebhookSignal {
  const action = str(json.action) ?? 'unknown';
  const vendorEventId = str(json.webhookActionId);
  const data = obj(json.data);
  const app = obj(data.application);
  const relevant = ['candidateStageChange', 'candidateHire', 'applicationUpdate', 'applicationSubmit'];
  if (!relevant.includes(action) || !str(app.id)) return { kind: 'ignored', vendorEvent: action, vendorEventId };
  const stage = obj(app.currentInterviewStage);
  const title = str(stage.title);
  const archive = obj(app.archiveReason);
  const reason = str(archive.text);
  let status: ApplicationStatus;
  if (action === 'candidateHire' || app.status === 'Hired') status = 'hired';
  else if (app.status === 'Archived') status = archive.reasonType === 'RejectedByCandidate' ? 'withdrawn' : 'rejected';
  else {
    const byType: Record<string, ApplicationStatus> = { Lead: 'applied', PreInterviewScreen: 'screening', Active: 'interview', Offer: 'offer', Hired: 'hired' };
    status = byType[str(stage.type) ?? ''] ?? statusFromStageName(title);
  }
  return {
    kind: 'status',
    vendorEvent: action,
    vendorEventId,
    externalApplicationId: str(app.id),
    externalCandidateId: str(obj(app.candidate).id),
    status,
    rawStage: title,
    reason: status === 'rejected' || status === 'withdrawn' ? reason : null,
    occurredAt: epochMs(app.updatedAt) ?? null,
  };
}

/**
 * Our own format for generic receivers, signed like our outbound requests:
 * `{eventId, type: "application.status_changed", applicationId, candidateId?, stage?, status?, reason?, occurredAt}`
 * where applicationId is the id the receiver answered our delivery with.
 */
function generic(json: Obj): WebhookSignal {
  const type = str(json.type) ?? 'unknown';
  const vendorEventId = str(json.eventId);
  const applicationId = str(json.applicationId);
  if (type !== 'application.status_changed' || !applicationId) return { kind: 'ignored', vendorEvent: type, vendorEventId };
  const stage = str(json.stage);
  const given = str(json.status);
  const statuses: readonly string[] = ['applied', 'screening', 'interview', 'offer', 'hired', 'rejected', 'withdrawn'];
  return {
    kind: 'status',
    vendorEvent: type,
    vendorEventId,
    externalApplicationId: applicationId,
    externalCandidateId: str(json.candidateId),
    status: given && statuses.includes(given) ? (given as ApplicationStatus) : statusFromStageName(stage),
    rawStage: stage,
    reason: str(json.reason),
    occurredAt: epochMs(json.occurredAt) ?? null,
  };
}

export function interpretWebhook(platform: Platform, json: unknown, headers: Headers): WebhookSignal {
  const body = obj(json);
  switch (platform) {
    case 'greenhouse':
      return greenhouse(body, headers);
    case 'lever':
      return lever(body);
    case 'workable':
      return workable(body);
    case 'ashby':
      return ashby(body);
    case 'generic':
      return generic(body);
    default:
      return { kind: 'ignored', vendorEvent: 'unknown', vendorEventId: null };
  }
}
