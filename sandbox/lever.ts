/**
 * Lever data API emulation, mounted at /lever:
 *   GET  /v1/opportunities?email=&posting_id=   → { data, hasNext }
 *   POST /v1/opportunities?perform_as=<user>    JSON or multipart (files only as multipart `resumeFile`)
 *   GET  /v1/postings                            → { data, hasNext }
 * Basic auth with the API key as user. A new opportunity joins the existing contact with the same
 * e-mail (Lever dedupes contacts by e-mail); a second opportunity for the same posting is accepted,
 * as the real API is not known to reject it — which is why the connector searches first.
 * Lever publishes no rate-limit headers: a throttled request gets 429 with Retry-After only.
 */
import { randomUUID } from 'node:crypto';
import type { SandboxRecord, Tenant } from './state.ts';
import { fileSummary, type VendorEmulation } from './vendor.ts';
import { basicAuth, isEmail, jsonBody, mediaType, multipartBody, reply, type SandboxRequest } from './wire.ts';
import { leverPostings } from './jobs.ts';

const error = (status: number, code: string, message: string) => reply(status, { code, message });

interface OpportunityInput {
  name?: string;
  emails: string[];
  phones: string[];
  links: string[];
  postings: string[];
  sources: string[];
  origin?: string;
  location?: string;
  resume?: Record<string, unknown>;
}

function fromMultipart(req: SandboxRequest): OpportunityInput | undefined {
  const parts = multipartBody(req);
  if (!parts) return undefined;
  const field = (name: string) => parts.filter((p) => p.name === name && p.fileName === undefined).map((p) => p.data.toString('utf8'));
  const resumeFile = parts.find((p) => p.name === 'resumeFile' && p.fileName !== undefined);
  return {
    name: field('name')[0],
    emails: field('emails[]'),
    phones: field('phones[0][value]'),
    links: field('links[]'),
    postings: field('postings[]'),
    sources: field('sources[]'),
    origin: field('origin')[0],
    location: field('location')[0],
    ...(resumeFile ? { resume: fileSummary(resumeFile.fileName!, resumeFile.contentType, resumeFile.data) } : {}),
  };
}

function fromJson(req: SandboxRequest): OpportunityInput | undefined {
  const b = jsonBody(req);
  if (!b) return undefined;
  const strings = (v: unknown) => (Array.isArray(v) ? v.map(String) : []);
  return {
    ...(typeof b.name === 'string' ? { name: b.name } : {}),
    emails: strings(b.emails),
    phones: Array.isArray(b.phones) ? b.phones.map((p) => String((p as { value?: unknown }).value ?? '')) : [],
    links: strings(b.links),
    postings: strings(b.postings),
    sources: strings(b.sources),
    ...(typeof b.origin === 'string' ? { origin: b.origin } : {}),
    ...(typeof b.location === 'string' ? { location: b.location } : {}),
  };
}

function createOpportunity(req: SandboxRequest, tenant: Tenant) {
  if (!tenant.isUser(req.query.get('perform_as') ?? undefined)) {
    return error(400, 'BadRequestError', 'perform_as must be the id of a Lever user');
  }
  const ct = mediaType(req);
  const input = ct === 'multipart/form-data' ? fromMultipart(req) : ct === 'application/json' ? fromJson(req) : undefined;
  if (!input) return error(400, 'BadRequestError', 'Body must be application/json or well-formed multipart/form-data');
  if (!input.name) return error(400, 'BadRequestError', 'name is required');
  const badEmail = input.emails.find((e) => !isEmail(e));
  if (badEmail !== undefined) return error(400, 'BadRequestError', `Invalid email: ${badEmail}`);
  if (input.postings.length > 1) return error(400, 'BadRequestError', 'Only one posting may be specified per request');
  const origins = ['agency', 'applied', 'internal', 'referred', 'sourced', 'university'];
  if (input.origin !== undefined && !origins.includes(input.origin)) return error(400, 'BadRequestError', `origin must be one of ${origins.join(', ')}`);
  const posting = input.postings[0];
  // Assumption (unconfirmed): an unknown posting answers 404.
  if (posting !== undefined && !tenant.hasJob(posting)) return error(404, 'ResourceNotFound', `Posting ${posting} not found`);

  const emails = input.emails.map((e) => e.toLowerCase());
  let contact = emails.map((e) => tenant.indexed(`email:${e}`)[0]).find(Boolean);
  if (!contact) {
    contact = { id: randomUUID(), name: input.name, emails, phones: input.phones };
    tenant.candidates.set(String(contact.id), contact);
    for (const e of emails) tenant.addToIndex(`email:${e}`, contact);
  }
  const applicationId = randomUUID();
  const opportunity: SandboxRecord = {
    id: randomUUID(),
    contact: contact.id,
    name: input.name,
    emails,
    phones: input.phones.map((value) => ({ value, type: 'mobile' })),
    links: input.links,
    location: input.location ?? null,
    origin: input.origin ?? 'sourced',
    sources: input.sources,
    postings: posting ? [posting] : [],
    applications: posting ? [applicationId] : [],
    stage: 'lead-new',
    createdAt: Date.now(),
    owner: req.query.get('perform_as'),
    resume: input.resume ?? null,
  };
  tenant.applications.set(String(opportunity.id), opportunity);
  tenant.addToIndex(`apps:${String(contact.id)}`, opportunity);
  // Assumption (unconfirmed): create answers 201.
  return reply(201, { data: opportunity });
}

export const lever: VendorEmulation = {
  platform: 'lever',

  tenantOf(req, state) {
    const creds = basicAuth(req);
    return creds ? state.byCredential.get(`lever:${creds[0]}`) : undefined;
  },

  defaultRateLimit: () => null,

  rateHeaders: () => ({}),

  errorBody: (status, message) => ({ code: status === 429 ? 'TooManyRequests' : 'ServiceUnavailable', message }),

  handle(req, _state, tenant) {
    const creds = basicAuth(req);
    if (!creds || !tenant || tenant.spec.credentials.apiKey !== creds[0] || req.forceBadCredentials) {
      return error(401, 'UnauthorizedError', 'Invalid API key');
    }
    if (req.method === 'GET' && req.path === '/v1/opportunities') {
      const email = req.query.get('email')?.toLowerCase();
      const posting = req.query.get('posting_id');
      const contact = email ? tenant.indexed(`email:${email}`)[0] : undefined;
      const pool = email ? (contact ? tenant.indexed(`apps:${String(contact.id)}`) : []) : [...tenant.applications.values()];
      const list = pool.filter((o) => (!email || (o.emails as string[]).includes(email)) && (!posting || (o.postings as string[]).includes(posting)));
      return reply(200, { data: list, hasNext: false });
    }
    if (req.method === 'POST' && req.path === '/v1/opportunities') return createOpportunity(req, tenant);
    if (req.method === 'GET' && req.path === '/v1/postings') return leverPostings(req, tenant);
    return error(404, 'ResourceNotFound', 'Not found');
  },
};
