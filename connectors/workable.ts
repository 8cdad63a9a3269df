/**
 * Workable SPI v3 at https://{subdomain}.workable.com/spi/v3 with a Bearer token (partner tokens
 * also send X-WORKABLE-CLIENT-ID and get the larger 50 / 10 s budget). Search
 * `GET /candidates?email=&shortcode=`, then `POST /jobs/{shortcode}/candidates` with
 * `sourced: false` so the candidate counts as applied. A Workable candidate belongs to one job, so
 * its id is both the candidate and the application id. An apiBaseUrl override may contain
 * `{subdomain}` (the sandbox's is `http://host:port/workable/{subdomain}`); `/spi/v3` is appended.
 */
import type { ApplicationSubmitted } from '../lib/application.ts';
import type { Integration, WorkableSettings } from '../registry/integration.ts';
import { AtsError } from './ats-error.ts';
import { WORKABLE_PARTNER_RATE_LIMIT } from './rate-limit.ts';
import { Base64, jsonBody } from './json-body.ts';
import { loadResume } from './resume.ts';
import type { AtsJob, Connector, ConnectorDeps, DeliveryResult, JobPage, JobPageRequest } from './types.ts';
import { isSuccess, requireCredential, VendorClient } from './vendor-client.ts';

/** Assumption (unconfirmed): errors carry `{error}` (or `{message}`). */
function messageOf(body: unknown): string | undefined {
  const b = body as { error?: unknown; message?: unknown } | undefined;
  if (!b || typeof b !== 'object') return undefined;
  if (typeof b.error === 'string') return b.error;
  return typeof b.message === 'string' ? b.message : undefined;
}

function spiBase(integration: Integration): string {
  const subdomain = (integration.settings as WorkableSettings).subdomain;
  if (!/^[a-z0-9][a-z0-9-]*$/i.test(subdomain ?? '')) {
    throw new AtsError('validation_failed', `Workable subdomain "${subdomain}" is not a valid account subdomain`, {
      context: { platform: 'workable', integrationId: integration.id },
    });
  }
  const base = integration.apiBaseUrl ? integration.apiBaseUrl.replace(/\/+$/, '').replace('{subdomain}', subdomain) : `https://${subdomain}.workable.com`;
  return `${base}/spi/v3`;
}

export class WorkableConnector implements Connector {
  readonly platform = 'workable' as const;

  constructor(private readonly deps: ConnectorDeps) {}

  private client(integration: Integration, signal: AbortSignal | undefined): { client: VendorClient; headers: Record<string, string> } {
    const headers: Record<string, string> = {
      authorization: `Bearer ${requireCredential(integration, 'token')}`,
      accept: 'application/json',
    };
    const partnerId = integration.credentials.clientId;
    if (partnerId) headers['x-workable-client-id'] = partnerId;
    const client = new VendorClient(this.deps, {
      platform: 'workable',
      integration,
      signal,
      messageOf,
      ...(partnerId ? { bucket: WORKABLE_PARTNER_RATE_LIMIT } : {}),
    });
    return { client, headers };
  }

  async deliver(a: ApplicationSubmitted, integration: Integration, signal?: AbortSignal): Promise<DeliveryResult> {
    const { client, headers } = this.client(integration, signal);
    const base = spiBase(integration);
    const shortcode = encodeURIComponent(a.atsJobId);

    const findExisting = async (): Promise<DeliveryResult | undefined> => {
      const search = await client.request({
        method: 'GET',
        url: `${base}/candidates?email=${encodeURIComponent(a.candidate.email)}&shortcode=${shortcode}&limit=100`,
        headers,
        step: 'candidates.search',
      });
      if (!isSuccess(search.status)) throw client.fail(search, 'candidates.search');
      const found = (search.json() as { candidates?: Array<{ id: string }> } | undefined)?.candidates;
      if (!Array.isArray(found)) throw client.unexpected(search, 'candidates.search', 'response has no candidates array');
      return found[0] ? { externalCandidateId: found[0].id, externalApplicationId: found[0].id, deduplicated: true } : undefined;
    };
    const existing = await findExisting();
    if (existing) return existing;

    const { resume, omitted } = await loadResume(a, integration, this.deps.http, this.deps.resumeMaxBytes, signal);
    const c = a.candidate;
    const address = c.location ? [c.location.city, c.location.region, c.location.country].filter(Boolean).join(', ') : '';
    const candidate: Record<string, unknown> = {
      name: `${c.firstName} ${c.lastName}`.trim(),
      firstname: c.firstName,
      lastname: c.lastName,
      email: c.email,
      ...(c.phone ? { phone: c.phone } : {}),
      ...(address ? { address } : {}),
      social_profiles: c.links.map((l) => ({ type: l.type.toLowerCase(), url: l.url })),
      ...(a.source ? { domain: a.source } : {}),
      // Assumption (unconfirmed): the create endpoint takes the resume inline as `resume: {name, data(base64)}`.
      ...(resume ? { resume: { name: resume.fileName, data: new Base64(resume.bytes) } } : {}),
    };

    const step = 'candidates.create';
    const res = await client.request({
      method: 'POST',
      url: `${base}/jobs/${shortcode}/candidates`,
      headers: { ...headers, 'content-type': 'application/json' },
      body: jsonBody({ sourced: false, candidate }),
      step,
    });
    // 404 = unknown shortcode (job_not_found). Assumption (unconfirmed): a candidate already in the job answers 409.
    // A 409 after our search found nothing means a concurrent delivery (same person, same job) won the race:
    // what it created is this application's candidate too.
    if (res.status === 409) {
      const raced = await findExisting();
      if (raced) return raced;
    }
    if (!isSuccess(res.status)) throw client.fail(res, step);
    const created = (res.json() as { candidate?: { id?: string } } | undefined)?.candidate;
    if (!created?.id) throw client.unexpected(res, step, 'response has no candidate.id');
    return { externalCandidateId: created.id, externalApplicationId: created.id, deduplicated: false, resumeOmitted: omitted };
  }

  /**
   * `GET /spi/v3/jobs?state=published&limit=100`; incremental: every state, `updated_after=<ISO-8601
   * basic>` (seconds: the cut-off is rounded down, so nothing at the boundary is lost). Then `paging.next`
   * (a full URL, followed only within the account's base).
   */
  async listJobsPage(integration: Integration, { cursor, since }: JobPageRequest, signal?: AbortSignal): Promise<JobPage> {
    const { client, headers } = this.client(integration, signal);
    const base = spiBase(integration);
    if (cursor && !cursor.startsWith(`${base}/`)) throw new AtsError('unexpected_response', `workable jobs.list: pagination link outside ${base}`, { context: client.context('jobs.list') });
    const filter = since ? `updated_after=${new Date(since).toISOString().replace(/\.\d+Z$/, 'Z').replace(/[-:]/g, '')}` : 'state=published';
    const res = await client.request({ method: 'GET', url: cursor ?? `${base}/jobs?${filter}&limit=100`, headers, step: 'jobs.list' });
    if (!isSuccess(res.status)) throw client.fail(res, 'jobs.list', res.status === 404 ? 'unexpected_response' : undefined);
    const body = res.json() as { jobs?: Array<Record<string, unknown>>; paging?: { next?: string } } | undefined;
    if (!Array.isArray(body?.jobs)) throw client.unexpected(res, 'jobs.list', 'expected {jobs: [...]}');
    const jobs = body.jobs.map((j): AtsJob => ({
      externalJobId: String(j.shortcode),
      title: String(j.title ?? ''),
      // Workable's "closed" means internal/confidential, not filled: only published jobs are advertised.
      status: j.state === 'published' ? 'open' : 'closed',
      requisitionCode: typeof j.code === 'string' && j.code ? j.code : null,
      location: ((j.location ?? {}) as { location_str?: string }).location_str ?? null,
      updatedAt: typeof j.updated_at === 'string' ? j.updated_at : null,
    }));
    return { jobs, next: body.paging?.next ?? null };
  }

  async testConnection(integration: Integration, signal?: AbortSignal): Promise<void> {
    const { client, headers } = this.client(integration, signal);
    const res = await client.request({ method: 'GET', url: `${spiBase(integration)}/jobs?limit=1`, headers, step: 'jobs.list' });
    if (!isSuccess(res.status)) throw client.fail(res, 'jobs.list', res.status === 404 ? 'unexpected_response' : undefined);
  }
}
