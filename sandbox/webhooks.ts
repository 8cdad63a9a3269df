/**
 * The sandbox as a sender: builds each vendor's webhook for a stage change, a hire or a rejection,
 * signs it the vendor's way (producers/webhooks/signatures.ts has the receiving side) and POSTs it
 * to a URL — with faults: a bad signature, a stale timestamp (Lever/generic), the same delivery
 * twice (a vendor retry), and a batch delivered out of order (newest first). Lever can sign each
 * event with its own token (`leverTokens`), as Lever does now that it issues one per webhook.
 *
 *   POST /_sandbox/webhooks  {deliveries: [WebhookSpec…], outOfOrder?}  → 200 {results: [{status, body}]}
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Platform } from '../registry/integration.ts';
import { leverSignature, signatureHeaders } from '../producers/webhooks/signatures.ts';

export type WebhookKind = 'stage_change' | 'hire' | 'rejection';

export interface WebhookSpec {
  platform: Platform;
  /** Where to POST (the integration's webhook URL). */
  url: string;
  /** The webhook secret (Workable: the account API token); Lever: the token of any event not in `leverTokens`. */
  secret: string;
  /** Lever only: signature tokens by event name (Lever issues one per webhook, i.e. per event type). */
  leverTokens?: Partial<Record<string, string>>;
  kind: WebhookKind;
  /** The ATS's application id (Lever opportunity, Workable candidate) as our connector stored it. */
  externalApplicationId: string;
  externalCandidateId?: string;
  /** Stage name (Greenhouse, Ashby), stage slug (Workable) or stage id (Lever); default "Interview". */
  stage?: string;
  /** Epoch ms of the change; default now. */
  occurredAt?: number;
  faults?: { badSignature?: boolean; duplicate?: boolean; staleTimestamp?: boolean };
}

export interface WebhookResult {
  status: number;
  body: string;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** Greenhouse escapes < and > in the JSON it signs; sending it that way checks we verify raw bytes. */
const greenhouseJson = (v: unknown): string => JSON.stringify(v).replace(/</g, '\\u003c').replace(/>/g, '\\u003e');

function ashbyStageType(stage: string): string {
  if (/offer/i.test(stage)) return 'Offer';
  if (/screen/i.test(stage)) return 'PreInterviewScreen';
  if (/new|lead|applied/i.test(stage)) return 'Lead';
  return 'Active';
}

export function buildWebhook(spec: WebhookSpec): { headers: Record<string, string>; body: string } {
  const at = spec.occurredAt ?? Date.now();
  const stale = spec.faults?.staleTimestamp ? at - 3_600_000 : at;
  const stage = spec.stage ?? 'Interview';
  const signWith = (secret: string): string => (spec.faults?.badSignature ? `${secret}-wrong` : secret);
  const key = signWith(spec.secret);
  const json = { 'content-type': 'application/json' };
  switch (spec.platform) {
    case 'greenhouse': {
      const action = { stage_change: 'candidate_stage_change', hire: 'hire_candidate', rejection: 'reject_candidate' }[spec.kind];
      const body = greenhouseJson({
        action,
        payload: {
          application: {
            id: Number(spec.externalApplicationId),
            candidate: { id: Number(spec.externalCandidateId ?? 0), first_name: 'Ada', last_name: 'Byron <sandbox>' },
            status: spec.kind === 'hire' ? 'hired' : spec.kind === 'rejection' ? 'rejected' : 'active',
            current_stage: { id: 77, name: stage },
            last_activity_at: iso(at),
            ...(spec.kind === 'rejection' ? { rejected_at: iso(at), rejection_reason: { id: 9, name: 'Lacking skill(s)', type: { id: 1, name: 'We rejected them' } } } : {}),
          },
        },
      });
      return { headers: { ...json, 'greenhouse-event-id': randomUUID(), ...signatureHeaders('greenhouse', body, key) }, body };
    }
    case 'lever': {
      const event = { stage_change: 'candidateStageChange', hire: 'candidateHired', rejection: 'candidateArchiveChange' }[spec.kind];
      const token = randomBytes(24).toString('hex');
      const data =
        spec.kind === 'rejection'
          ? { opportunityId: spec.externalApplicationId, contactId: spec.externalCandidateId, toArchived: { archivedAt: at, reason: 'Underqualified' }, fromArchived: null }
          : { opportunityId: spec.externalApplicationId, candidateId: spec.externalApplicationId, contactId: spec.externalCandidateId, toStageId: spec.kind === 'hire' ? 'offer' : stage, fromStageId: 'applicant-new' };
      const body = JSON.stringify({ id: randomUUID(), event, triggeredAt: stale, token, signature: leverSignature(token, stale, signWith(spec.leverTokens?.[event] ?? spec.secret)), data });
      return { headers: { ...json, 'user-agent': 'Lever-Webhooks' }, body };
    }
    case 'workable': {
      const body = JSON.stringify({
        id: randomUUID(),
        event_type: 'candidate_moved',
        fired_at: iso(at),
        resource_type: 'candidate',
        data: {
          id: spec.externalApplicationId,
          stage: spec.kind === 'hire' ? 'hired' : stage,
          disqualified: spec.kind === 'rejection',
          disqualification_reason: spec.kind === 'rejection' ? 'Not a fit' : null,
          hired_at: spec.kind === 'hire' ? iso(at) : null,
          updated_at: iso(at),
        },
      });
      return { headers: { ...json, ...signatureHeaders('workable', body, key) }, body };
    }
    case 'ashby': {
      const action = { stage_change: 'candidateStageChange', hire: 'candidateHire', rejection: 'applicationUpdate' }[spec.kind];
      const body = JSON.stringify({
        webhookActionId: randomUUID(),
        action,
        data: {
          application: {
            id: spec.externalApplicationId,
            status: spec.kind === 'hire' ? 'Hired' : spec.kind === 'rejection' ? 'Archived' : 'Active',
            candidate: { id: spec.externalCandidateId ?? null },
            currentInterviewStage: { id: randomUUID(), title: spec.kind === 'hire' ? 'Hired' : stage, type: spec.kind === 'hire' ? 'Hired' : ashbyStageType(stage) },
            ...(spec.kind === 'rejection' ? { archiveReason: { id: randomUUID(), text: 'Not a fit', reasonType: 'RejectedByOrg' }, archivedAt: iso(at) } : {}),
            updatedAt: iso(at),
          },
        },
      });
      return { headers: { ...json, ...signatureHeaders('ashby', body, key) }, body };
    }
    case 'generic': {
      const body = JSON.stringify({
        eventId: randomUUID(),
        type: 'application.status_changed',
        applicationId: spec.externalApplicationId,
        candidateId: spec.externalCandidateId ?? null,
        stage: spec.kind === 'hire' ? 'Hired' : spec.kind === 'rejection' ? 'Rejected' : stage,
        ...(spec.kind === 'hire' ? { status: 'hired' } : spec.kind === 'rejection' ? { status: 'rejected' } : {}),
        occurredAt: iso(stale),
      });
      return { headers: { ...json, ...signatureHeaders('generic', body, key) }, body };
    }
  }
}

async function post(url: string, delivery: { headers: Record<string, string>; body: string }): Promise<WebhookResult> {
  const res = await fetch(url, { method: 'POST', headers: delivery.headers, body: delivery.body, signal: AbortSignal.timeout(15_000) });
  return { status: res.status, body: await res.text() };
}

/** Send each delivery (twice with the duplicate fault), in order or newest first. */
export async function fireWebhooks(specs: readonly WebhookSpec[], opts: { outOfOrder?: boolean } = {}): Promise<WebhookResult[]> {
  const built = specs.map((spec) => ({ spec, delivery: buildWebhook(spec) }));
  const order = opts.outOfOrder ? [...built].reverse() : built;
  const results: WebhookResult[] = [];
  for (const { spec, delivery } of order) {
    results.push(await post(spec.url, delivery));
    if (spec.faults?.duplicate) results.push(await post(spec.url, delivery));
  }
  return results;
}
