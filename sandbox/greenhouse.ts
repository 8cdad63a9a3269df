/**
 * Greenhouse Harvest emulation, mounted at /greenhouse:
 *   v1  Basic auth (key as user, empty password), On-Behalf-Of on writes, JSON only.
 *       GET /v1/candidates?email=&job_id=, GET /v1/candidates/{id}, POST /v1/candidates,
 *       POST /v1/candidates/{id}/applications, GET /v1/jobs
 *   v3  POST /auth/token (client credentials, `sub` = user), Bearer on everything else.
 *       GET|POST /v3/candidates, GET|POST /v3/applications, GET|POST /v3/attachments, GET /v3/jobs
 * Rate limit: 50 per 10-second window, X-RateLimit-Limit/Remaining on every answer, 429 with
 * Retry-After and X-RateLimit-Reset.
 */
import { randomBytes } from 'node:crypto';
import type { SandboxState, SandboxRecord, Tenant } from './state.ts';
import { fileSummary, type VendorEmulation } from './vendor.ts';
import { basicAuth, bearer, formBody, header, isBase64, isEmail, jsonBody, reply, type SandboxReply, type SandboxRequest } from './wire.ts';
import { greenhouseJobs } from './jobs.ts';

const ATTACHMENT_TYPES_V1 = ['resume', 'cover_letter', 'admin_only', 'other', 'take_home_test', 'offer_letter', 'signed_offer_letter'];
const CONTENT_TYPES = [
  'application/pdf',
  'application/msword',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  'text/plain',
  'application/rtf',
  'text/rtf',
  'application/vnd.oasis.opendocument.text',
];
const TOKEN_TTL_SECONDS = 3600;

type FieldError = { field: string; message: string };

function validation(errors: FieldError[]): SandboxReply {
  return reply(422, { message: 'Validation error', errors });
}
const unauthorized = (): SandboxReply => reply(401, { message: 'Invalid Basic Auth credentials' });
const notFound = (): SandboxReply => reply(404, { message: 'Resource not found' });

function validateAttachment(a: unknown, prefix: string, types: string[]): FieldError[] {
  const errors: FieldError[] = [];
  const att = a as Record<string, unknown>;
  if (!att || typeof att !== 'object') return [{ field: prefix, message: 'must be an object' }];
  if (typeof att.filename !== 'string' || !att.filename) errors.push({ field: `${prefix}.filename`, message: 'is required' });
  if (typeof att.type !== 'string' || !types.includes(att.type)) errors.push({ field: `${prefix}.type`, message: `must be one of ${types.join(', ')}` });
  const hasContent = att.content !== undefined;
  const hasUrl = att.url !== undefined;
  if (hasContent === hasUrl) errors.push({ field: `${prefix}.content`, message: 'exactly one of content or url is required' });
  if (hasContent) {
    if (!isBase64(att.content)) errors.push({ field: `${prefix}.content`, message: 'must be base64' });
    // content_type is required with content since 2022-08-01.
    if (typeof att.content_type !== 'string' || !CONTENT_TYPES.includes(att.content_type)) {
      errors.push({ field: `${prefix}.content_type`, message: 'is required with content and must be an accepted type' });
    }
  }
  return errors;
}

function storeAttachment(state: SandboxState, tenant: Tenant, applicationId: number, a: Record<string, unknown>): SandboxRecord {
  if (a.type === 'resume') {
    // A new resume reclassifies the previous one as "other".
    for (const old of tenant.indexed(`atts:${applicationId}`)) if (old.type === 'resume') old.type = 'other';
  }
  const bytes = typeof a.content === 'string' ? Buffer.from(a.content, 'base64') : Buffer.alloc(0);
  const rec: SandboxRecord = {
    id: state.nextNumericId(),
    application_id: applicationId,
    filename: a.filename,
    type: a.type,
    visibility: a.visibility ?? 'public',
    url: a.url ?? null,
    ...fileSummary(String(a.filename), a.content_type as string | undefined, bytes),
  };
  tenant.attachments.set(String(rec.id), rec);
  tenant.addToIndex(`atts:${applicationId}`, rec);
  return rec;
}

function applicationView(tenant: Tenant, app: SandboxRecord): Record<string, unknown> {
  const jobId = app.job_id as number;
  return {
    ...app,
    jobs: [{ id: jobId, name: `Job ${jobId}` }],
    attachments: tenant.indexed(`atts:${app.id}`).map(({ id, filename, type }) => ({ id, filename, type })),
  };
}

function candidateView(tenant: Tenant, c: SandboxRecord): Record<string, unknown> {
  const apps = tenant.indexed(`apps:${c.id}`);
  return { ...c, application_ids: apps.map((a) => a.id), applications: apps.map((a) => applicationView(tenant, a)) };
}

function emailOf(c: SandboxRecord): string[] {
  return ((c.email_addresses as Array<{ value: string }> | undefined) ?? []).map((e) => e.value.toLowerCase());
}

function createApplication(state: SandboxState, tenant: Tenant, candidateId: number, body: Record<string, unknown>): SandboxRecord {
  const app: SandboxRecord = {
    id: state.nextNumericId(),
    candidate_id: candidateId,
    job_id: Number(body.job_id),
    status: 'active',
    source_id: body.source_id ?? null,
    current_stage: { id: 1, name: 'Application Review' },
    applied_at: new Date().toISOString(),
  };
  tenant.applications.set(String(app.id), app);
  tenant.addToIndex(`apps:${candidateId}`, app);
  for (const a of (body.attachments as Array<Record<string, unknown>> | undefined) ?? []) storeAttachment(state, tenant, app.id as number, a);
  return app;
}

/** job_id checks shared by create-candidate and add-application: 422 for a bad value, 404 for an unknown job. */
function checkJob(tenant: Tenant, jobId: unknown, field: string): SandboxReply | undefined {
  if (!Number.isSafeInteger(jobId)) return validation([{ field, message: 'is required and must be an integer' }]);
  // Assumption (unconfirmed): an unknown job id answers 404 like any missing resource.
  if (!tenant.hasJob(jobId as number)) return notFound();
  return undefined;
}

function alreadyApplied(tenant: Tenant, candidateId: number, jobId: number): boolean {
  return tenant.indexed(`apps:${candidateId}`).some((a) => a.job_id === jobId);
}

function candidateErrors(body: Record<string, unknown>): FieldError[] {
  const errors: FieldError[] = [];
  if (typeof body.first_name !== 'string' || !body.first_name) errors.push({ field: 'first_name', message: 'is required' });
  if (typeof body.last_name !== 'string' || !body.last_name) errors.push({ field: 'last_name', message: 'is required' });
  for (const [i, e] of ((body.email_addresses as unknown[] | undefined) ?? []).entries()) {
    if (!isEmail((e as { value?: unknown })?.value)) errors.push({ field: `email_addresses[${i}].value`, message: 'is not an e-mail address' });
  }
  return errors;
}

function createCandidate(state: SandboxState, tenant: Tenant, body: Record<string, unknown>): SandboxRecord {
  const c: SandboxRecord = {
    id: state.nextNumericId(),
    first_name: body.first_name,
    last_name: body.last_name,
    email_addresses: body.email_addresses ?? [],
    phone_numbers: body.phone_numbers ?? [],
    addresses: body.addresses ?? [],
    website_addresses: body.website_addresses ?? [],
    social_media_addresses: body.social_media_addresses ?? [],
    created_at: new Date().toISOString(),
  };
  tenant.candidates.set(String(c.id), c);
  for (const e of emailOf(c)) tenant.addToIndex(`email:${e}`, c);
  return c;
}

function v1(req: SandboxRequest, state: SandboxState, tenant: Tenant): SandboxReply {
  const write = req.method !== 'GET';
  if (!write && req.body.length > 0) return reply(403, { message: 'A body was sent with a GET request' });
  if (write && !tenant.isUser(header(req, 'on-behalf-of'))) {
    // Assumption (unconfirmed): a missing or unknown On-Behalf-Of user answers 403.
    return reply(403, { message: 'Missing or invalid On-Behalf-Of header' });
  }
  const path = req.path;
  if (req.method === 'GET' && path === '/v1/jobs') return greenhouseJobs(req, tenant, 'v1');
  if (req.method === 'GET' && path === '/v1/candidates') {
    const email = req.query.get('email')?.toLowerCase();
    const jobId = req.query.get('job_id');
    let list = email ? tenant.indexed(`email:${email}`) : [...tenant.candidates.values()];
    if (jobId) list = list.filter((c) => tenant.indexed(`apps:${c.id}`).some((a) => String(a.job_id) === jobId));
    return reply(200, list.map((c) => candidateView(tenant, c)));
  }
  const one = /^\/v1\/candidates\/(\d+)$/.exec(path);
  if (req.method === 'GET' && one) {
    const c = tenant.candidates.get(one[1]!);
    return c ? reply(200, candidateView(tenant, c)) : notFound();
  }
  if (req.method === 'POST' && path === '/v1/candidates') {
    const body = jsonBody(req);
    if (!body) return reply(400, { message: 'Request body must be JSON' });
    const errors = candidateErrors(body);
    const apps = body.applications;
    if (!Array.isArray(apps) || apps.length === 0) errors.push({ field: 'applications', message: 'must contain at least one application' });
    for (const [i, a] of (Array.isArray(apps) ? apps : []).entries()) {
      for (const [j, att] of (((a as Record<string, unknown>)?.attachments as unknown[]) ?? []).entries()) {
        errors.push(...validateAttachment(att, `applications[${i}].attachments[${j}]`, ATTACHMENT_TYPES_V1));
      }
    }
    if (errors.length) return validation(errors);
    for (const [i, a] of (apps as Array<Record<string, unknown>>).entries()) {
      const bad = checkJob(tenant, a.job_id, `applications[${i}].job_id`);
      if (bad) return bad;
    }
    const c = createCandidate(state, tenant, body);
    for (const a of apps as Array<Record<string, unknown>>) createApplication(state, tenant, c.id as number, a);
    // Assumption (unconfirmed): create answers 201 with the candidate.
    return reply(201, candidateView(tenant, c));
  }
  const add = /^\/v1\/candidates\/(\d+)\/applications$/.exec(path);
  if (req.method === 'POST' && add) {
    const c = tenant.candidates.get(add[1]!);
    if (!c) return notFound();
    const body = jsonBody(req);
    if (!body) return reply(400, { message: 'Request body must be JSON' });
    const errors = ((body.attachments as unknown[]) ?? []).flatMap((att, j) => validateAttachment(att, `attachments[${j}]`, ATTACHMENT_TYPES_V1));
    if (errors.length) return validation(errors);
    const bad = checkJob(tenant, body.job_id, 'job_id');
    if (bad) return bad;
    if (alreadyApplied(tenant, c.id as number, body.job_id as number)) {
      return validation([{ field: 'job_id', message: 'Candidate has already applied to this job' }]);
    }
    return reply(201, applicationView(tenant, createApplication(state, tenant, c.id as number, body)));
  }
  return notFound();
}

function v3(req: SandboxRequest, state: SandboxState, tenant: Tenant): SandboxReply {
  const path = req.path;
  const q = req.query;
  if (req.method === 'GET' && path === '/v3/jobs') return greenhouseJobs(req, tenant, 'v3');
  if (req.method === 'GET' && path === '/v3/candidates') {
    const email = q.get('email')?.toLowerCase();
    return reply(200, email ? tenant.indexed(`email:${email}`) : [...tenant.candidates.values()]);
  }
  if (req.method === 'POST' && path === '/v3/candidates') {
    const body = jsonBody(req);
    if (!body) return reply(400, { message: 'Request body must be JSON' });
    const errors = candidateErrors(body);
    if (errors.length) return validation(errors);
    return reply(201, createCandidate(state, tenant, body));
  }
  if (req.method === 'GET' && path === '/v3/applications') {
    const candidateId = q.get('candidate_id');
    const list = (candidateId ? tenant.indexed(`apps:${candidateId}`) : [...tenant.applications.values()]).filter((a) => !q.get('job_id') || String(a.job_id) === q.get('job_id'));
    return reply(200, list);
  }
  if (req.method === 'POST' && path === '/v3/applications') {
    const body = jsonBody(req);
    if (!body) return reply(400, { message: 'Request body must be JSON' });
    if (!Number.isSafeInteger(body.candidate_id) || !tenant.candidates.has(String(body.candidate_id))) {
      return validation([{ field: 'candidate_id', message: 'is required and must name an existing candidate' }]);
    }
    const bad = checkJob(tenant, body.job_id, 'job_id');
    if (bad) return bad;
    if (alreadyApplied(tenant, body.candidate_id as number, body.job_id as number)) {
      return validation([{ field: 'job_id', message: 'Candidate has already applied to this job' }]);
    }
    return reply(201, createApplication(state, tenant, body.candidate_id as number, { job_id: body.job_id, source_id: body.source_id }));
  }
  if (req.method === 'GET' && path === '/v3/attachments') {
    // Harvest v3 filters by comma lists (application_ids, candidate_ids); an unknown filter is refused.
    const unknown = [...q.keys()].find((k) => !['application_ids', 'candidate_ids', 'per_page', 'cursor', 'type'].includes(k));
    if (unknown) return reply(400, { message: `Unknown query parameter: ${unknown}` });
    const appIds = q.get('application_ids')?.split(',').filter(Boolean);
    const list = appIds ? appIds.flatMap((id) => tenant.indexed(`atts:${id}`)) : [...tenant.attachments.values()];
    return reply(200, list.filter((a) => !q.get('type') || a.type === q.get('type')));
  }
  if (req.method === 'POST' && path === '/v3/attachments') {
    const body = jsonBody(req);
    if (!body) return reply(400, { message: 'Request body must be JSON' });
    const errors = validateAttachment(body, 'attachment', ['resume', 'cover_letter', 'take_home_test', 'offer_letter', 'signed_offer_letter', 'other']);
    if (!Number.isSafeInteger(body.application_id) || !tenant.applications.has(String(body.application_id))) {
      errors.push({ field: 'application_id', message: 'is required and must name an existing application' });
    }
    if (errors.length) return validation(errors);
    return reply(201, storeAttachment(state, tenant, body.application_id as number, body));
  }
  return notFound();
}

function token(req: SandboxRequest, state: SandboxState): SandboxReply {
  const creds = basicAuth(req);
  const tenant = creds ? state.byCredential.get(`greenhouse:${creds[0]}`) : undefined;
  if (!creds || !tenant || tenant.spec.credentials.clientSecret !== creds[1] || req.forceBadCredentials) {
    return reply(401, { error: 'invalid_client', error_description: 'Client authentication failed' });
  }
  const form = formBody(req);
  if (!form || form.get('grant_type') !== 'client_credentials') return reply(400, { error: 'unsupported_grant_type' });
  const sub = form.get('sub') ?? undefined;
  if (!tenant.isUser(sub)) return reply(400, { error: 'invalid_grant', error_description: 'sub must be a Greenhouse user id' });
  const accessToken = randomBytes(24).toString('base64url');
  state.tokens.set(accessToken, { tenant, sub: sub!, expiresAt: Date.now() + TOKEN_TTL_SECONDS * 1000 });
  return reply(200, { access_token: accessToken, token_type: 'Bearer', expires_in: TOKEN_TTL_SECONDS });
}

export const greenhouse: VendorEmulation = {
  platform: 'greenhouse',

  tenantOf(req, state) {
    if (req.path.startsWith('/v3/')) {
      const t = bearer(req);
      return t ? state.tokens.get(t)?.tenant : undefined;
    }
    const creds = basicAuth(req);
    return creds ? state.byCredential.get(`greenhouse:${creds[0]}`) : undefined;
  },

  defaultRateLimit: () => ({ limit: 50, windowMs: 10_000 }),

  rateHeaders(limit, remaining, reset, throttled) {
    const h: Record<string, string> = { 'x-ratelimit-limit': String(limit.limit), 'x-ratelimit-remaining': String(remaining) };
    if (throttled) h['x-ratelimit-reset'] = String(reset);
    return h;
  },

  errorBody: (_status, message) => ({ message }),

  handle(req, state, tenant) {
    if (req.path === '/auth/token' && req.method === 'POST') return token(req, state);
    if (req.path.startsWith('/v1/')) {
      const creds = basicAuth(req);
      if (!creds || !tenant || tenant.spec.credentials.apiKey !== creds[0] || creds[1] !== '' || req.forceBadCredentials) return unauthorized();
      return v1(req, state, tenant);
    }
    if (req.path.startsWith('/v3/')) {
      const t = bearer(req);
      const issued = t ? state.tokens.get(t) : undefined;
      if (!issued || !tenant || issued.expiresAt < Date.now() || req.forceBadCredentials) return reply(401, { message: 'Invalid or expired access token' });
      return v3(req, state, tenant);
    }
    return notFound();
  },
};
