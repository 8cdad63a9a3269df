/**
 * The sandbox's job listings, each in its vendor's real pagination style (../shared/docs/ats-inbound.md §0.1):
 *
 *   Greenhouse v1   GET /v1/jobs?status=&per_page=&page=        Link: <…>; rel="next", <…>; rel="last"
 *   Greenhouse v3   GET /v3/jobs?status=&per_page=, then ?cursor= (the only parameter allowed, else 422)
 *   Lever           GET /v1/postings?state=&limit=&offset=      {data, hasNext, next}
 *   Workable        GET /spi/v3/jobs?state=&limit=&since_id=    {jobs, paging: {next: <full URL>}}
 *   Ashby           POST job.list {status[], limit, cursor}     {success, results, moreDataAvailable, nextCursor}
 *
 * A tenant's jobs are its `jobRecords` (set through PUT /_sandbox/jobs or `Sandbox.setJobs`), or, when
 * none were set, its `spec.jobs` ids as open jobs named "Job <id>".
 */
import type { Tenant } from './state.ts';
import { reply, type SandboxReply, type SandboxRequest } from './wire.ts';

export interface SandboxJob {
  id: string;
  title: string;
  requisitionCode?: string | null;
  location?: string | null;
  status: 'open' | 'closed';
  updatedAt?: number;
}

export function jobsOf(tenant: Tenant): SandboxJob[] {
  if (tenant.jobRecords.size) return [...tenant.jobRecords.values()];
  return (tenant.spec.jobs ?? []).map((id) => ({ id, title: `Job ${id}`, status: 'open' }));
}

const iso = (ms: number | undefined): string => new Date(ms ?? 0).toISOString();
const encode = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
function decode<T>(token: string): T | undefined {
  try {
    return JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as T;
  } catch {
    return undefined;
  }
}

function clamp(raw: string | null, dflt: number, max: number): number | undefined {
  if (raw === null) return dflt;
  const n = Number(raw);
  return Number.isInteger(n) && n >= 1 && n <= max ? n : undefined;
}

function greenhouseJob(j: SandboxJob): Record<string, unknown> {
  return {
    id: Number(j.id),
    name: j.title,
    requisition_id: j.requisitionCode ?? null,
    status: j.status,
    updated_at: iso(j.updatedAt),
    offices: j.location ? [{ id: 1, name: j.location, location: { name: j.location } }] : [],
  };
}

export function greenhouseJobs(req: SandboxRequest, tenant: Tenant, version: 'v1' | 'v3'): SandboxReply {
  const base = `${req.origin}/greenhouse/${version}/jobs`;
  let status = req.query.get('status');
  let perPage: number | undefined;
  let offset = 0;
  const cursor = req.query.get('cursor');
  if (version === 'v3' && cursor !== null) {
    if ([...req.query.keys()].length !== 1) return reply(422, { message: 'cursor must be the only query parameter' });
    const c = decode<{ o: number; p: number; s: string | null }>(cursor);
    if (!c) return reply(422, { message: 'invalid cursor' });
    ({ o: offset, p: perPage, s: status } = c);
  } else {
    perPage = clamp(req.query.get('per_page'), 100, 500);
    if (perPage === undefined) return reply(422, { message: 'per_page must be between 1 and 500' });
    if (version === 'v1') {
      const page = clamp(req.query.get('page'), 1, 1_000_000);
      if (page === undefined) return reply(422, { message: 'page must be a positive integer' });
      offset = (page - 1) * perPage;
    }
  }
  const all = jobsOf(tenant).filter((j) => !status || j.status === status);
  const slice = all.slice(offset, offset + perPage);
  const links: string[] = [];
  if (offset + perPage < all.length) {
    if (version === 'v1') {
      const q = (page: number): string => `${base}?page=${page}&per_page=${perPage}${status ? `&status=${status}` : ''}`;
      links.push(`<${q(offset / perPage + 2)}>; rel="next"`, `<${q(Math.ceil(all.length / perPage))}>; rel="last"`);
    } else {
      links.push(`<${base}?cursor=${encode({ o: offset + perPage, p: perPage, s: status })}>; rel="next"`);
    }
  }
  return reply(200, slice.map(greenhouseJob), links.length ? { link: links.join(', ') } : undefined);
}

export function leverPostings(req: SandboxRequest, tenant: Tenant): SandboxReply {
  const limit = clamp(req.query.get('limit'), 100, 100);
  if (limit === undefined) return reply(400, { code: 'BadRequestError', message: 'limit must be between 1 and 100' });
  const token = req.query.get('offset');
  const offset = token === null ? 0 : decode<{ i: number }>(token)?.i;
  if (offset === undefined) return reply(400, { code: 'BadRequestError', message: 'invalid offset' });
  const state = req.query.get('state');
  const all = jobsOf(tenant).filter((j) => !state || (state === 'published' ? j.status === 'open' : j.status === 'closed'));
  const data = all.slice(offset, offset + limit).map((j) => ({
    id: j.id,
    text: j.title,
    state: j.status === 'open' ? 'published' : 'closed',
    requisitionCodes: j.requisitionCode ? [j.requisitionCode] : [],
    categories: { location: j.location ?? undefined },
    updatedAt: j.updatedAt ?? 0,
  }));
  const hasNext = offset + limit < all.length;
  return reply(200, { data, hasNext, ...(hasNext ? { next: encode({ i: offset + limit }) } : {}) });
}

export function workableJobs(req: SandboxRequest, tenant: Tenant, subdomain: string): SandboxReply {
  const limit = clamp(req.query.get('limit'), 50, 100);
  if (limit === undefined) return reply(422, { error: 'limit must be between 1 and 100' });
  const state = req.query.get('state');
  const all = jobsOf(tenant).filter((j) => !state || (state === 'published' ? j.status === 'open' : j.status === 'closed'));
  const since = req.query.get('since_id');
  const from = since === null ? 0 : all.findIndex((j) => j.id === since);
  if (from < 0) return reply(200, { jobs: [], paging: {} });
  const jobs = all.slice(from, from + limit).map((j) => ({
    shortcode: j.id,
    title: j.title,
    full_title: j.requisitionCode ? `${j.title} - ${j.requisitionCode}` : j.title,
    code: j.requisitionCode ?? null,
    state: j.status === 'open' ? 'published' : 'closed',
    location: { location_str: j.location ?? '' },
    updated_at: iso(j.updatedAt),
  }));
  const nextJob = all[from + limit];
  const next = nextJob ? `${req.origin}/workable/${subdomain}/spi/v3/jobs?limit=${limit}${state ? `&state=${state}` : ''}&since_id=${encodeURIComponent(nextJob.id)}` : undefined;
  return reply(200, { jobs, paging: next ? { next } : {} });
}

export function ashbyJobList(body: Record<string, unknown>, tenant: Tenant): SandboxReply {
  const limit = body.limit === undefined ? 100 : Number(body.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) return reply(200, { success: false, errors: ['invalid_input'], errorInfo: { code: 'invalid_input', message: 'limit must be 1..100' } });
  const offset = typeof body.cursor === 'string' ? decode<{ i: number }>(body.cursor)?.i : 0;
  if (offset === undefined) return reply(200, { success: false, errors: ['invalid_cursor'], errorInfo: { code: 'invalid_cursor', message: 'invalid cursor' } });
  const statuses = Array.isArray(body.status) ? (body.status as string[]) : ['Open', 'Closed', 'Archived'];
  const all = jobsOf(tenant).filter((j) => statuses.includes(j.status === 'open' ? 'Open' : 'Closed'));
  const results = all.slice(offset, offset + limit).map((j) => ({
    id: j.id,
    title: j.title,
    status: j.status === 'open' ? 'Open' : 'Closed',
    customRequisitionId: j.requisitionCode ?? null,
    locationName: j.location ?? null,
    updatedAt: iso(j.updatedAt),
  }));
  const more = offset + limit < all.length;
  return reply(200, { success: true, results, moreDataAvailable: more, ...(more ? { nextCursor: encode({ i: offset + limit }) } : {}) });
}
