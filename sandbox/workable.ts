/**
 * Workable SPI v3 emulation, mounted at /workable/{subdomain}/spi/v3 (the subdomain stands in for
 * https://{subdomain}.workable.com):
 *   GET  /candidates?email=&shortcode=      → { candidates, paging }
 *   POST /jobs/{shortcode}/candidates       { sourced?, candidate: { name | firstname+lastname, email, … } }
 *   GET  /jobs                              → { jobs, paging }
 * Bearer token of the subdomain's account (partner tokens also need X-WORKABLE-CLIENT-ID).
 * `sourced` defaults to true as in v3. Rate limit: 10 requests / 10 s for account tokens, 50 for
 * partner tokens; X-Rate-Limit-Limit/Remaining/Reset on every answer.
 */
import { randomBytes } from 'node:crypto';
import type { SandboxRecord, SandboxState, Tenant } from './state.ts';
import { fileSummary, type VendorEmulation } from './vendor.ts';
import { bearer, header, isBase64, isEmail, jsonBody, reply, type SandboxRequest } from './wire.ts';
import { workableJobs } from './jobs.ts';

const SPI = /^\/([a-z0-9-]+)\/spi\/v3(\/.*)$/i;

function route(req: SandboxRequest): { subdomain: string; path: string } | undefined {
  const m = SPI.exec(req.path);
  return m ? { subdomain: m[1]!, path: m[2]! } : undefined;
}

const error = (status: number, message: string) => reply(status, { error: message });

function createCandidate(req: SandboxRequest, tenant: Tenant, shortcode: string) {
  if (!tenant.hasJob(shortcode)) return error(404, 'Not found');
  const body = jsonBody(req);
  if (!body) return error(400, 'Body must be JSON');
  const c = body.candidate as Record<string, unknown> | undefined;
  if (!c || typeof c !== 'object') return error(422, 'Validation failed: candidate is required');
  const name = typeof c.name === 'string' && c.name ? c.name : typeof c.firstname === 'string' && typeof c.lastname === 'string' ? `${c.firstname} ${c.lastname}` : '';
  if (!name.trim()) return error(422, 'Validation failed: name (or firstname and lastname) is required');
  if (!isEmail(c.email)) return error(422, 'Validation failed: email is required and must be valid');
  if (body.sourced !== undefined && typeof body.sourced !== 'boolean') return error(422, 'Validation failed: sourced must be a boolean');
  let resume: Record<string, unknown> | null = null;
  if (c.resume !== undefined) {
    const r = c.resume as { name?: unknown; data?: unknown };
    if (typeof r?.name !== 'string' || !isBase64(r.data)) return error(422, 'Validation failed: resume needs name and base64 data');
    resume = fileSummary(r.name, undefined, Buffer.from(r.data, 'base64'));
  }
  const email = c.email.toLowerCase();
  const dup = tenant.indexed(`email:${email}`).some((x) => x.shortcode === shortcode);
  // Assumption (unconfirmed): a candidate already in the job answers 409.
  if (dup) return error(409, 'Candidate already exists in this job');
  const sourced = body.sourced ?? true;
  const rec: SandboxRecord = {
    id: randomBytes(4).toString('hex'),
    name,
    firstname: c.firstname ?? null,
    lastname: c.lastname ?? null,
    email,
    phone: c.phone ?? null,
    address: c.address ?? null,
    domain: c.domain ?? null,
    sourced,
    stage: sourced ? 'sourced' : 'applied',
    shortcode,
    job: { shortcode, title: `Job ${shortcode}` },
    resume,
    created_at: new Date().toISOString(),
  };
  tenant.candidates.set(String(rec.id), rec);
  tenant.applications.set(String(rec.id), rec);
  tenant.addToIndex(`email:${email}`, rec);
  // 201 per a 3rd-party source; the official status is unconfirmed.
  return reply(201, { status: 'created', candidate: rec });
}

export const workable: VendorEmulation = {
  platform: 'workable',

  tenantOf(req: SandboxRequest, state: SandboxState) {
    const r = route(req);
    return r ? state.tenant('workable', r.subdomain) : undefined;
  },

  defaultRateLimit: (_req, tenant) => ({ limit: tenant.spec.credentials.clientId ? 50 : 10, windowMs: 10_000 }),

  rateHeaders(limit, remaining, reset) {
    return { 'x-rate-limit-limit': String(limit.limit), 'x-rate-limit-remaining': String(remaining), 'x-rate-limit-reset': String(reset) };
  },

  errorBody: (_status, message) => ({ error: message }),

  handle(req, _state, tenant) {
    const r = route(req);
    if (!r || !tenant) return error(404, 'Not found');
    const token = bearer(req);
    if (!token || token !== tenant.spec.credentials.token || req.forceBadCredentials) return error(401, 'Not authorized');
    if (tenant.spec.credentials.clientId && header(req, 'x-workable-client-id') !== tenant.spec.credentials.clientId) {
      return error(401, 'Partner tokens need a valid X-WORKABLE-CLIENT-ID');
    }
    if (req.method === 'GET' && r.path === '/candidates') {
      const email = req.query.get('email')?.toLowerCase();
      const shortcode = req.query.get('shortcode');
      const list = (email ? tenant.indexed(`email:${email}`) : [...tenant.candidates.values()]).filter((c) => !shortcode || c.shortcode === shortcode);
      return reply(200, { candidates: list, paging: {} });
    }
    const create = /^\/jobs\/([^/]+)\/candidates$/.exec(r.path);
    if (req.method === 'POST' && create) return createCandidate(req, tenant, decodeURIComponent(create[1]!));
    if (req.method === 'GET' && r.path === '/jobs') return workableJobs(req, tenant, r.subdomain);
    return error(404, 'Not found');
  },
};
