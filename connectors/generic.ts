/**
 * Generic REST receiver: the customer configures the URL, method, auth (header API key, bearer or
 * basic) and a declarative field mapping from the event to the JSON body.
 *
 * - `fieldMapping` maps a target path in the body to a source path in the event, both dotted with
 *   numeric array indexes: `{"applicant.email": "candidate.email", "cv": "resume.url",
 *   "links.0": "candidate.links.0.url"}`. Sources that resolve to undefined are left out. An empty
 *   mapping sends the whole event. The virtual source `resume.contentBase64` fetches the resume
 *   (size cap, type and checksum checks) and inlines it.
 * - Every request carries `X-ATS-Relay-Signature: sha256=<hex HMAC-SHA256(signingSecret, raw body)>`,
 *   `X-ATS-Relay-Event-Id` and `Idempotency-Key: <applicationId>`; receivers dedupe on the latter
 *   (no search endpoint exists to look first). A 2xx answer may carry JSON `{candidateId,
 *   applicationId | id}`; otherwise our application id stands in. `Idempotent-Replayed: true` on the
 *   answer marks a deduplicated delivery.
 */
import { createHmac } from 'node:crypto';
import type { ApplicationSubmitted } from '../lib/application.ts';
import type { GenericSettings, Integration } from '../registry/integration.ts';
import { AtsError } from './ats-error.ts';
import { Base64, jsonBody } from './json-body.ts';
import { loadResume, type ResumeOmission } from './resume.ts';
import type { Connector, ConnectorDeps, DeliveryResult } from './types.ts';
import { isSuccess, requireCredential, VendorClient } from './vendor-client.ts';

export const SIGNATURE_HEADER = 'x-ats-relay-signature';
const RESUME_CONTENT = 'resume.contentBase64';

export function signBody(body: string | Buffer, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

function getPath(source: unknown, path: string): unknown {
  let cur: unknown = source;
  for (const part of path.split('.')) {
    if (cur === null || cur === undefined || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let cur: Record<string, unknown> = target;
  parts.forEach((part, i) => {
    if (part === '__proto__' || part === 'constructor' || part === 'prototype') {
      throw new AtsError('validation_failed', `field mapping target "${path}" is not allowed`);
    }
    if (i === parts.length - 1) {
      cur[part] = value;
      return;
    }
    const next = cur[part];
    if (next === null || typeof next !== 'object') cur[part] = /^\d+$/.test(parts[i + 1]!) ? [] : {};
    cur = cur[part] as Record<string, unknown>;
  });
}

/** The JSON body for an event under a field mapping (exported for the integrations API preview). */
export function buildBody(event: ApplicationSubmitted, mapping: Record<string, string>, resumeContent?: Base64): Record<string, unknown> {
  const entries = Object.entries(mapping ?? {});
  if (entries.length === 0) return { ...event } as unknown as Record<string, unknown>;
  const source = { ...event, resume: event.resume ? { ...event.resume, contentBase64: resumeContent } : null };
  const body: Record<string, unknown> = {};
  for (const [target, from] of entries) {
    const value = getPath(source, from);
    if (value !== undefined) setPath(body, target, value);
  }
  return body;
}

function messageOf(body: unknown, text: string): string | undefined {
  const b = body as { message?: unknown; error?: unknown } | undefined;
  if (b && typeof b === 'object') {
    if (typeof b.message === 'string') return b.message;
    if (typeof b.error === 'string') return b.error;
  }
  return text || undefined;
}

export class GenericConnector implements Connector {
  readonly platform = 'generic' as const;

  constructor(private readonly deps: ConnectorDeps) {}

  private headers(integration: Integration): Record<string, string> {
    const settings = integration.settings as GenericSettings;
    const headers: Record<string, string> = { accept: 'application/json' };
    switch (settings.authStyle) {
      case 'header':
        headers[(settings.headerName ?? 'X-API-Key').toLowerCase()] = requireCredential(integration, 'apiKey');
        break;
      case 'bearer':
        headers.authorization = `Bearer ${requireCredential(integration, 'token')}`;
        break;
      case 'basic': {
        const user = requireCredential(integration, 'username');
        headers.authorization = `Basic ${Buffer.from(`${user}:${integration.credentials.password ?? ''}`).toString('base64')}`;
        break;
      }
      case 'none':
        break;
    }
    return headers;
  }

  async deliver(a: ApplicationSubmitted, integration: Integration, signal?: AbortSignal): Promise<DeliveryResult> {
    const settings = integration.settings as GenericSettings;
    const client = new VendorClient(this.deps, { platform: 'generic', integration, signal, messageOf });
    const secret = requireCredential(integration, 'signingSecret');

    let resumeContent: Base64 | undefined;
    let omitted: ResumeOmission | null = null;
    if (Object.values(settings.fieldMapping ?? {}).some((from) => from === RESUME_CONTENT)) {
      const outcome = await loadResume(a, integration, this.deps.http, this.deps.resumeMaxBytes, signal);
      resumeContent = outcome.resume ? new Base64(outcome.resume.bytes) : undefined;
      omitted = outcome.omitted;
    }
    const body = jsonBody(buildBody(a, settings.fieldMapping, resumeContent));

    const step = 'deliver';
    const res = await client.request({
      method: settings.method,
      url: settings.url,
      headers: {
        ...this.headers(integration),
        'content-type': 'application/json',
        [SIGNATURE_HEADER]: signBody(body, secret),
        'x-ats-relay-event-id': a.eventId,
        'idempotency-key': a.applicationId,
      },
      body,
      step,
    });
    if (!isSuccess(res.status)) throw client.fail(res, step, res.status === 404 ? 'unexpected_response' : undefined);
    const answer = (res.json() ?? {}) as { candidateId?: unknown; applicationId?: unknown; id?: unknown };
    const str = (v: unknown): string | undefined => (typeof v === 'string' || typeof v === 'number' ? String(v) : undefined);
    const applicationId = str(answer.applicationId) ?? str(answer.id) ?? a.applicationId;
    return {
      externalCandidateId: str(answer.candidateId) ?? applicationId,
      externalApplicationId: applicationId,
      deduplicated: String(res.headers['idempotent-replayed'] ?? '').toLowerCase() === 'true',
      resumeOmitted: omitted,
    };
  }

  /** Receivers have no read endpoint: a GET with the configured auth counts as working unless it answers 401/403/5xx (404/405 are normal). */
  async testConnection(integration: Integration, signal?: AbortSignal): Promise<void> {
    const settings = integration.settings as GenericSettings;
    const client = new VendorClient(this.deps, { platform: 'generic', integration, signal, messageOf });
    const res = await client.request({ method: 'GET', url: settings.url, headers: this.headers(integration), step: 'probe' });
    if (res.status === 401 || res.status === 403 || res.status >= 500) throw client.fail(res, 'probe');
  }
}
