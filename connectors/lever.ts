/**
 * Lever data API v1: Basic auth (API key as user), search `GET /v1/opportunities?email=&posting_id=`,
 * then `POST /v1/opportunities?perform_as=<user>` as multipart/form-data with `postings[]` and the
 * resume as `resumeFile` (Lever takes files only as multipart). Lever links a new opportunity to an
 * existing contact with the same e-mail, so "existing candidate, new job" needs no extra step.
 * The opportunity id is returned as the application id; the contact id as the candidate id.
 */
import { FormData } from 'undici';
import type { ApplicationSubmitted } from '../lib/application.ts';
import type { Integration, LeverSettings } from '../registry/integration.ts';
import { loadResume } from './resume.ts';
import type { AtsJob, Connector, ConnectorDeps, DeliveryResult, JobPage, JobPageRequest } from './types.ts';
import { baseUrl, basicKeyAuth, isSuccess, requireCredential, VendorClient } from './vendor-client.ts';

const LEVER_URL = 'https://api.lever.co';

interface LeverOpportunity {
  id: string;
  contact?: string;
  applications?: string[];
}

/** Assumption (unconfirmed): errors carry `{code, message}`. */
function messageOf(body: unknown): string | undefined {
  const b = body as { message?: unknown; error?: unknown } | undefined;
  if (!b || typeof b !== 'object') return undefined;
  if (typeof b.message === 'string') return b.message;
  return typeof b.error === 'string' ? b.error : undefined;
}

export class LeverConnector implements Connector {
  readonly platform = 'lever' as const;

  constructor(private readonly deps: ConnectorDeps) {}

  async deliver(a: ApplicationSubmitted, integration: Integration, signal?: AbortSignal): Promise<DeliveryResult> {
    const settings = integration.settings as LeverSettings;
    const client = new VendorClient(this.deps, { platform: 'lever', integration, signal, messageOf });
    const base = `${baseUrl(integration, LEVER_URL)}/v1`;
    const auth = basicKeyAuth(requireCredential(integration, 'apiKey'));

    const search = await client.request({
      method: 'GET',
      url: `${base}/opportunities?email=${encodeURIComponent(a.candidate.email)}&posting_id=${encodeURIComponent(a.atsJobId)}&limit=100`,
      headers: { authorization: auth, accept: 'application/json' },
      step: 'opportunities.search',
    });
    if (!isSuccess(search.status)) throw client.fail(search, 'opportunities.search', search.status === 404 ? 'unexpected_response' : undefined);
    const found = (search.json() as { data?: LeverOpportunity[] } | undefined)?.data;
    if (!Array.isArray(found)) throw client.unexpected(search, 'opportunities.search', 'response has no data array');
    const existing = found[0];
    if (existing) return { externalCandidateId: existing.contact ?? existing.id, externalApplicationId: existing.id, deduplicated: true };

    const { resume, omitted } = await loadResume(a, integration, this.deps.http, this.deps.resumeMaxBytes, signal);
    const c = a.candidate;
    const form = new FormData();
    form.append('name', `${c.firstName} ${c.lastName}`.trim());
    form.append('emails[]', c.email);
    if (c.phone) {
      // Assumption (unconfirmed): nested objects go as bracketed multipart fields, phones[0][value].
      form.append('phones[0][value]', c.phone);
      form.append('phones[0][type]', 'mobile');
    }
    const location = c.location ? [c.location.city, c.location.region, c.location.country].filter(Boolean).join(', ') : '';
    if (location) form.append('location', location);
    for (const link of c.links) form.append('links[]', link.url);
    form.append('postings[]', a.atsJobId);
    form.append('origin', settings.origin ?? 'applied');
    if (a.source) form.append('sources[]', a.source);
    if (resume) form.append('resumeFile', new Blob([resume.bytes], { type: resume.contentType }), resume.fileName);

    const step = 'opportunities.create';
    const res = await client.request({
      method: 'POST',
      url: `${base}/opportunities?perform_as=${encodeURIComponent(settings.performAs)}`,
      headers: { authorization: auth, accept: 'application/json' },
      body: form,
      step,
    });
    // Assumption (unconfirmed): an unknown posting id answers 404 (→ job_not_found by the status table).
    if (!isSuccess(res.status)) throw client.fail(res, step);
    const created = (res.json() as { data?: LeverOpportunity } | undefined)?.data;
    if (!created?.id) throw client.unexpected(res, step, 'response has no data.id');
    return { externalCandidateId: created.contact ?? created.id, externalApplicationId: created.id, deduplicated: false, resumeOmitted: omitted };
  }

  /**
   * `GET /v1/postings?state=published&limit=100[&offset=<token>]` → `{data, hasNext, next}`.
   * Incremental: `updated_at_start=<ms>` (inclusive) alone, since Lever refuses it beside any filter but
   * confidentiality: every state comes back and closed/draft postings map to closed here.
   */
  async listJobsPage(integration: Integration, { cursor, since }: JobPageRequest, signal?: AbortSignal): Promise<JobPage> {
    const client = new VendorClient(this.deps, { platform: 'lever', integration, signal, messageOf });
    const filter = since ? `updated_at_start=${Date.parse(since)}` : 'state=published';
    const res = await client.request({
      method: 'GET',
      url: `${baseUrl(integration, LEVER_URL)}/v1/postings?${filter}&limit=100${cursor ? `&offset=${encodeURIComponent(cursor)}` : ''}`,
      headers: { authorization: basicKeyAuth(requireCredential(integration, 'apiKey')), accept: 'application/json' },
      step: 'postings.list',
    });
    if (!isSuccess(res.status)) throw client.fail(res, 'postings.list', res.status === 404 ? 'unexpected_response' : undefined);
    const body = res.json() as { data?: Array<Record<string, unknown>>; hasNext?: boolean; next?: string } | undefined;
    if (!Array.isArray(body?.data)) throw client.unexpected(res, 'postings.list', 'expected {data: [...]}');
    const jobs = body.data.map((p): AtsJob => {
      const codes = (p.requisitionCodes ?? []) as string[];
      const categories = (p.categories ?? {}) as { location?: string };
      return {
        externalJobId: String(p.id),
        title: String(p.text ?? ''),
        status: p.state === 'published' || p.state === 'internal' ? 'open' : 'closed',
        requisitionCode: codes[0] ?? null,
        location: categories.location ?? null,
        updatedAt: p.updatedAt === undefined ? null : String(p.updatedAt),
      };
    });
    return { jobs, next: body.hasNext && body.next ? body.next : null };
  }

  async testConnection(integration: Integration, signal?: AbortSignal): Promise<void> {
    const client = new VendorClient(this.deps, { platform: 'lever', integration, signal, messageOf });
    const res = await client.request({
      method: 'GET',
      url: `${baseUrl(integration, LEVER_URL)}/v1/postings?limit=1`,
      headers: { authorization: basicKeyAuth(requireCredential(integration, 'apiKey')), accept: 'application/json' },
      step: 'postings.list',
    });
    if (!isSuccess(res.status)) throw client.fail(res, 'postings.list', res.status === 404 ? 'unexpected_response' : undefined);
  }
}
