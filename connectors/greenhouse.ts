/**
 * Greenhouse Harvest. The integration chooses the generation (`settings.apiVersion`):
 * - v1: Basic auth (API key as user, empty password), `On-Behalf-Of` on writes, one
 *   `POST /v1/candidates` carrying the application and the resume (base64 `content` + `content_type`).
 * - v3: OAuth client-credentials token (`sub` = the Greenhouse user) cached until it expires;
 *   candidate, `POST /v3/applications` and `POST /v3/attachments` as separate steps.
 * Both search by e-mail first so a retry never creates a second candidate or application.
 * With an apiBaseUrl override both Harvest and the token endpoint live under it
 * (`{base}/v1/…`, `{base}/v3/…`, `{base}/auth/token`).
 */
import { createHash } from 'node:crypto';
import type { ApplicationSubmitted } from '../lib/application.ts';
import type { GreenhouseSettings, Integration } from '../registry/integration.ts';
import { AtsError } from './ats-error.ts';
import type { HttpResponse } from './http.ts';
import { Base64, jsonBody } from './json-body.ts';
import { loadResume, type Resume, type ResumeOutcome } from './resume.ts';
import { linkNext, type AtsJob, type Connector, type ConnectorDeps, type DeliveryResult, type JobPage, type JobPageRequest } from './types.ts';
import { baseUrl, basicKeyAuth, isSuccess, requireCredential, VendorClient } from './vendor-client.ts';

const HARVEST_URL = 'https://harvest.greenhouse.io';
const TOKEN_URL = 'https://auth.greenhouse.io/token';

interface GhApplication {
  id: number;
  jobs?: Array<{ id: number }>;
  job_id?: number;
}
interface GhCandidate {
  id: number;
  applications?: GhApplication[];
  application_ids?: number[];
}

function messageOf(body: unknown): string | undefined {
  const b = body as { message?: unknown; errors?: Array<{ message?: unknown; field?: unknown }> } | undefined;
  if (!b || typeof b !== 'object') return undefined;
  const details = Array.isArray(b.errors) ? b.errors.map((e) => `${String(e.field ?? '')}: ${String(e.message ?? '')}`).join('; ') : '';
  const head = typeof b.message === 'string' ? b.message : '';
  return [head, details].filter(Boolean).join(' — ') || undefined;
}

/** Greenhouse answers a bad job id on create with 404, or (unconfirmed) 422 naming job_id. */
function failCreate(client: VendorClient, res: HttpResponse, step: string): AtsError {
  if (res.status === 422) {
    const errors = (res.json() as { errors?: Array<{ field?: string; message?: string }> } | undefined)?.errors ?? [];
    // The field is `job_id` on add-application and `applications[0].job_id` on create-candidate.
    const onJob = errors.find((e) => /(^|[.\]])job_id$/.test(e.field ?? ''));
    // Assumption (unconfirmed): "already applied" comes back as 422 on job_id.
    if (onJob && /already/i.test(onJob.message ?? '')) return client.fail(res, step, 'duplicate');
    if (onJob && /(not found|does not exist|invalid)/i.test(onJob.message ?? '')) return client.fail(res, step, 'job_not_found');
  }
  return client.fail(res, step);
}

function jobIdOf(application: ApplicationSubmitted): number {
  const n = Number(application.atsJobId);
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new AtsError('job_not_found', `Greenhouse job ids are integers, got "${application.atsJobId}"`, {
      context: { platform: 'greenhouse', integrationId: application.integrationId },
    });
  }
  return n;
}

const SOCIAL = new Set(['linkedin', 'twitter', 'x', 'github', 'facebook']);

function candidateFields(a: ApplicationSubmitted): Record<string, unknown> {
  const c = a.candidate;
  const location = c.location ? [c.location.city, c.location.region, c.location.country].filter(Boolean).join(', ') : '';
  return {
    first_name: c.firstName,
    last_name: c.lastName,
    email_addresses: [{ value: c.email, type: 'personal' }],
    phone_numbers: c.phone ? [{ value: c.phone, type: 'mobile' }] : [],
    addresses: location ? [{ value: location, type: 'home' }] : [],
    social_media_addresses: c.links.filter((l) => SOCIAL.has(l.type.toLowerCase())).map((l) => ({ value: l.url })),
    website_addresses: c.links
      .filter((l) => !SOCIAL.has(l.type.toLowerCase()))
      .map((l) => ({ value: l.url, type: l.type.toLowerCase() === 'portfolio' ? 'portfolio' : 'personal' })),
  };
}

function attachment(resume: Resume): Record<string, unknown> {
  return { filename: resume.fileName, type: 'resume', content: new Base64(resume.bytes), content_type: resume.contentType };
}

interface CachedToken {
  accessToken: string;
  expiresAt: number;
}

export class GreenhouseConnector implements Connector {
  readonly platform = 'greenhouse' as const;
  private readonly tokens = new Map<string, Promise<CachedToken>>();

  constructor(private readonly deps: ConnectorDeps) {}

  async deliver(application: ApplicationSubmitted, integration: Integration, signal?: AbortSignal): Promise<DeliveryResult> {
    const settings = integration.settings as GreenhouseSettings;
    const client = this.client(integration, signal);
    return settings.apiVersion === 'v1' ? this.deliverV1(application, client, settings) : this.deliverV3(application, client, settings);
  }

  async testConnection(integration: Integration, signal?: AbortSignal): Promise<void> {
    const settings = integration.settings as GreenhouseSettings;
    const client = this.client(integration, signal);
    const version = settings.apiVersion === 'v1' ? 'v1' : 'v3';
    const res = await this.send(client, settings, { method: 'GET', path: `/${version}/jobs?per_page=1`, step: 'jobs.list' });
    if (!isSuccess(res.status)) throw client.fail(res, 'jobs.list', res.status === 404 ? 'unexpected_response' : undefined);
  }

  /**
   * `GET /v1|v3/jobs?status=open&per_page=100`; incremental: no status filter (a closed job must come
   * back as changed) but v1 `updated_after=<ISO>` or v3 `updated_at=gte|<ISO>`, both inclusive. Then
   * the `Link: rel="next"` URLs as given (v3's cursor must be the only parameter of a follow-up call
   * and carries the filter, so links are never rebuilt).
   */
  async listJobsPage(integration: Integration, { cursor, since }: JobPageRequest, signal?: AbortSignal): Promise<JobPage> {
    const settings = integration.settings as GreenhouseSettings;
    const client = this.client(integration, signal);
    const version = settings.apiVersion === 'v1' ? 'v1' : 'v3';
    const base = baseUrl(integration, HARVEST_URL);
    const filter = !since ? 'status=open' : version === 'v1' ? `updated_after=${encodeURIComponent(since)}` : `updated_at=${encodeURIComponent(`gte|${since}`)}`;
    let path = `/${version}/jobs?${filter}&per_page=100`;
    if (cursor) {
      if (!cursor.startsWith(`${base}/`)) throw new AtsError('unexpected_response', `greenhouse jobs.list: pagination link outside ${base}`, { context: client.context('jobs.list') });
      path = cursor.slice(base.length);
    }
    const res = await this.send(client, settings, { method: 'GET', path, step: 'jobs.list' });
    if (!isSuccess(res.status)) throw client.fail(res, 'jobs.list', res.status === 404 ? 'unexpected_response' : undefined);
    const rows = res.json() as Array<Record<string, unknown>> | undefined;
    if (!Array.isArray(rows)) throw client.unexpected(res, 'jobs.list', 'expected a JSON array');
    const jobs = rows.map((j): AtsJob => {
      const offices = (j.offices ?? j.office_ids ?? []) as Array<{ name?: string; location?: { name?: string } }>;
      return {
        externalJobId: String(j.id),
        title: String(j.name ?? ''),
        status: j.status === 'open' ? 'open' : 'closed',
        requisitionCode: typeof j.requisition_id === 'string' && j.requisition_id ? j.requisition_id : null,
        location: offices[0]?.location?.name ?? offices[0]?.name ?? null,
        updatedAt: typeof j.updated_at === 'string' ? j.updated_at : null,
      };
    });
    const header = res.headers.link;
    return { jobs, next: linkNext(Array.isArray(header) ? header.join(',') : header) };
  }

  private client(integration: Integration, signal: AbortSignal | undefined): VendorClient {
    return new VendorClient(this.deps, { platform: 'greenhouse', integration, signal, messageOf });
  }

  // --- v1 ---------------------------------------------------------------------------------------

  private async deliverV1(a: ApplicationSubmitted, client: VendorClient, settings: GreenhouseSettings): Promise<DeliveryResult> {
    const jobId = jobIdOf(a);
    const lookup = async (): Promise<{ candidates: GhCandidate[]; delivered?: DeliveryResult }> => {
      const found = await this.send(client, settings, {
        method: 'GET',
        path: `/v1/candidates?email=${encodeURIComponent(a.candidate.email)}&per_page=100`,
        step: 'candidates.search',
      });
      if (!isSuccess(found.status)) throw client.fail(found, 'candidates.search', found.status === 404 ? 'unexpected_response' : undefined);
      const candidates = (found.json() ?? []) as GhCandidate[];
      if (!Array.isArray(candidates)) throw client.unexpected(found, 'candidates.search', 'expected a JSON array');
      for (const c of candidates) {
        const app = (c.applications ?? []).find((x) => (x.jobs ?? []).some((j) => j.id === jobId) || x.job_id === jobId);
        if (app) return { candidates, delivered: { externalCandidateId: String(c.id), externalApplicationId: String(app.id), deduplicated: true } };
      }
      return { candidates };
    };
    const { candidates, delivered } = await lookup();
    if (delivered) return delivered;

    const { resume, omitted } = await this.resume(a, client);
    const existing = candidates[0];
    const applicationBody = {
      job_id: jobId,
      ...(settings.sourceId === undefined ? {} : { source_id: settings.sourceId }),
      ...(resume ? { attachments: [attachment(resume)] } : {}),
    };

    if (existing) {
      const step = 'candidates.applications.create';
      const res = await this.send(client, settings, { method: 'POST', path: `/v1/candidates/${existing.id}/applications`, step, body: applicationBody });
      if (!isSuccess(res.status)) {
        const err = failCreate(client, res, step);
        // "Already applied" after our search found nothing: a concurrent delivery of this application won.
        const raced = err.code === 'duplicate' ? (await lookup()).delivered : undefined;
        if (raced) return raced;
        throw err;
      }
      const app = res.json() as GhApplication | undefined;
      if (!app?.id) throw client.unexpected(res, step, 'response has no application id');
      return { externalCandidateId: String(existing.id), externalApplicationId: String(app.id), deduplicated: false, resumeOmitted: omitted };
    }

    const step = 'candidates.create';
    const res = await this.send(client, settings, {
      method: 'POST',
      path: '/v1/candidates',
      step,
      body: { ...candidateFields(a), applications: [applicationBody] },
    });
    if (!isSuccess(res.status)) throw failCreate(client, res, step);
    // Creation may be asynchronous: the answer can be truncated to the candidate id and
    // application_ids, and a GET can 404 for a while — so read whichever the answer carries.
    const created = res.json() as GhCandidate | undefined;
    const applicationId = created?.applications?.[0]?.id ?? created?.application_ids?.[0];
    if (!created?.id || !applicationId) throw client.unexpected(res, step, 'response has no candidate or application id');
    return { externalCandidateId: String(created.id), externalApplicationId: String(applicationId), deduplicated: false, resumeOmitted: omitted };
  }

  // --- v3 ---------------------------------------------------------------------------------------

  private async deliverV3(a: ApplicationSubmitted, client: VendorClient, settings: GreenhouseSettings): Promise<DeliveryResult> {
    const jobId = jobIdOf(a);
    // Assumption (unconfirmed): v3 lists candidates by `email` and applications by `candidate_id`
    // + `job_id`, answering JSON arrays like v1; one page suffices for one e-mail address.
    const found = await this.send(client, settings, {
      method: 'GET',
      path: `/v3/candidates?email=${encodeURIComponent(a.candidate.email)}&per_page=100`,
      step: 'candidates.list',
    });
    if (!isSuccess(found.status)) throw client.fail(found, 'candidates.list', found.status === 404 ? 'unexpected_response' : undefined);
    const candidates = (found.json() ?? []) as Array<{ id: number }>;
    if (!Array.isArray(candidates)) throw client.unexpected(found, 'candidates.list', 'expected a JSON array');
    let candidateId = candidates[0]?.id;

    const findApplication = async (candidate: number): Promise<number | undefined> => {
      const apps = await this.send(client, settings, {
        method: 'GET',
        path: `/v3/applications?candidate_id=${candidate}&job_id=${jobId}`,
        step: 'applications.list',
      });
      if (!isSuccess(apps.status)) throw client.fail(apps, 'applications.list', apps.status === 404 ? 'unexpected_response' : undefined);
      return ((apps.json() ?? []) as GhApplication[]).find((x) => x.job_id === jobId || x.jobs?.some((j) => j.id === jobId))?.id;
    };
    let applicationId = candidateId === undefined ? undefined : await findApplication(candidateId);

    /**
     * Whether the application already carries a resume; undefined when the lookup failed. The
     * application exists either way, so a failed lookup must not fail the delivery: the resume is
     * attached again, which Greenhouse makes harmless (a new resume reclassifies the previous as "other").
     */
    const hasResume = async (application: number): Promise<boolean | undefined> => {
      // Harvest v3 "List attachments", https://harvestdocs.greenhouse.io/reference/get_v3-attachments :
      // GET /v3/attachments filtered by `application_ids` (comma list of ≤ 50 ids; also `candidate_ids`,
      // `type`). Assumption (unconfirmed): the answer is a JSON array of {type, application_id, …} like
      // the other v3 lists; any other shape reads as "unknown" and the resume is attached again.
      let att: HttpResponse;
      try {
        att = await this.send(client, settings, { method: 'GET', path: `/v3/attachments?application_ids=${application}`, step: 'attachments.list' });
      } catch (err) {
        if (err instanceof AtsError && err.code === 'rate_limited') throw err; // a deferral, not a verdict
        return undefined;
      }
      if (att.status === 429) throw client.fail(att, 'attachments.list');
      const list = isSuccess(att.status) ? att.json() : undefined;
      if (!Array.isArray(list)) return undefined;
      return (list as Array<{ type?: string; application_id?: number }>).some((x) => x.type === 'resume' && (x.application_id === undefined || x.application_id === application));
    };
    if (applicationId !== undefined && (await hasResume(applicationId)) === true) {
      return { externalCandidateId: String(candidateId), externalApplicationId: String(applicationId), deduplicated: true };
    }

    const { resume, omitted } = await this.resume(a, client);
    const created = { candidate: false, application: false, attachment: false };

    if (candidateId === undefined) {
      // Assumption (unconfirmed): POST /v3/candidates takes the v1 candidate fields and returns {id}.
      const res = await this.send(client, settings, { method: 'POST', path: '/v3/candidates', step: 'candidates.create', body: candidateFields(a) });
      if (!isSuccess(res.status)) throw client.fail(res, 'candidates.create', res.status === 404 ? 'unexpected_response' : undefined);
      candidateId = (res.json() as { id?: number } | undefined)?.id;
      if (!candidateId) throw client.unexpected(res, 'candidates.create', 'response has no candidate id');
      created.candidate = true;
    }

    if (applicationId === undefined) {
      // Assumption (unconfirmed): POST /v3/applications takes {candidate_id, job_id, source_id?} and returns {id}.
      const res = await this.send(client, settings, {
        method: 'POST',
        path: '/v3/applications',
        step: 'applications.create',
        body: { candidate_id: candidateId, job_id: jobId, ...(settings.sourceId === undefined ? {} : { source_id: settings.sourceId }) },
      });
      if (isSuccess(res.status)) {
        applicationId = (res.json() as { id?: number } | undefined)?.id;
        if (!applicationId) throw client.unexpected(res, 'applications.create', 'response has no application id');
        created.application = true;
      } else {
        const err = failCreate(client, res, 'applications.create');
        // "Already applied" after our list found nothing: a concurrent delivery of this application
        // created it. Theirs is ours, and so is their resume once it is there.
        applicationId = err.code === 'duplicate' ? await findApplication(candidateId) : undefined;
        if (applicationId === undefined) throw err;
        if ((await hasResume(applicationId)) === true) return { externalCandidateId: String(candidateId), externalApplicationId: String(applicationId), deduplicated: !created.candidate };
      }
    }

    if (resume) {
      const res = await this.send(client, settings, {
        method: 'POST',
        path: '/v3/attachments',
        step: 'attachments.create',
        body: { application_id: applicationId, ...attachment(resume) },
      });
      if (!isSuccess(res.status)) throw client.fail(res, 'attachments.create', res.status === 404 ? 'unexpected_response' : undefined);
      created.attachment = true;
    }

    return {
      externalCandidateId: String(candidateId),
      externalApplicationId: String(applicationId),
      deduplicated: !created.candidate && !created.application && !created.attachment,
      resumeOmitted: omitted,
    };
  }

  // --- transport --------------------------------------------------------------------------------

  private resume(a: ApplicationSubmitted, client: VendorClient): Promise<ResumeOutcome> {
    return loadResume(a, client.integration, this.deps.http, this.deps.resumeMaxBytes, client.signal);
  }

  private async send(
    client: VendorClient,
    settings: GreenhouseSettings,
    req: { method: 'GET' | 'POST'; path: string; step: string; body?: unknown },
  ): Promise<HttpResponse> {
    const integration = client.integration;
    const url = `${baseUrl(integration, HARVEST_URL)}${req.path}`;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (req.body !== undefined) headers['content-type'] = 'application/json';
    const body = req.body === undefined ? undefined : jsonBody(req.body);

    if (settings.apiVersion === 'v1') {
      headers.authorization = basicKeyAuth(requireCredential(integration, 'apiKey'));
      if (req.method !== 'GET') headers['on-behalf-of'] = settings.onBehalfOf;
      return client.request({ method: req.method, url, headers, body, step: req.step });
    }

    for (let attempt = 0; ; attempt++) {
      const token = await this.token(client, settings);
      headers.authorization = `Bearer ${token.accessToken}`;
      const res = await client.request({ method: req.method, url, headers, body, step: req.step });
      // A token revoked or expired early: fetch a fresh one once.
      if (res.status === 401 && attempt === 0) {
        this.tokens.delete(this.tokenKey(integration, settings));
        continue;
      }
      return res;
    }
  }

  /** Tokens are cached per integration, credentials and user: new credentials never reuse an old token. */
  private tokenKey(integration: Integration, settings: GreenhouseSettings): string {
    const creds = createHash('sha256').update(`${integration.credentials.clientId}:${integration.credentials.clientSecret}`).digest('hex').slice(0, 16);
    return `${integration.id}:${creds}:${settings.onBehalfOf}`;
  }

  private async token(client: VendorClient, settings: GreenhouseSettings): Promise<CachedToken> {
    const key = this.tokenKey(client.integration, settings);
    const cached = this.tokens.get(key);
    if (cached) {
      const t = await cached.catch(() => undefined);
      if (t && t.expiresAt > Date.now()) return t;
      if (this.tokens.get(key) === cached) this.tokens.delete(key);
    }
    const fresh = this.fetchToken(client, settings);
    this.tokens.set(key, fresh);
    fresh.catch(() => this.tokens.delete(key));
    return fresh;
  }

  private async fetchToken(client: VendorClient, settings: GreenhouseSettings): Promise<CachedToken> {
    const integration = client.integration;
    const clientId = requireCredential(integration, 'clientId');
    const clientSecret = requireCredential(integration, 'clientSecret');
    const url = integration.apiBaseUrl ? `${baseUrl(integration, HARVEST_URL)}/auth/token` : TOKEN_URL;
    const res = await client.request({
      method: 'POST',
      url,
      step: 'oauth.token',
      headers: {
        authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', sub: settings.onBehalfOf }).toString(),
    });
    if (!isSuccess(res.status)) {
      // The token endpoint says 400/401/403 for bad client credentials or an unknown `sub`.
      throw client.fail(res, 'oauth.token', [400, 401, 403].includes(res.status) ? 'auth_failed' : undefined);
    }
    const body = res.json() as { access_token?: string; expires_in?: number } | undefined;
    if (!body?.access_token) throw client.unexpected(res, 'oauth.token', 'response has no access_token');
    const ttlMs = (body.expires_in ?? 3600) * 1000;
    // Renew a minute (or a tenth of the lifetime, if shorter) before the token expires.
    return { accessToken: body.access_token, expiresAt: Date.now() + ttlMs - Math.min(60_000, ttlMs / 10) };
  }
}
