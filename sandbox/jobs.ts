/**
 * The sandbox's job listings, each in its vendor's real pagination style (../shared/docs/ats-inbound.md §0.1):
 *
 *   Greenhouse v1   GET /v1/jobs?status=&per_page=&page=        Link: <…>; rel="next", <…>; rel="last"
 *   Greenhouse v3   GET /v3/jobs?status=&per_page=, then ?cursor= (the only parameter allowed, else 422)
 *   Lever           GET /v1/postings?state=&limit=&offset=      {data, hasNext, next}
 *   Workable        GET /spi/v3/jobs?state=&limit=&since_id=    {jobs, paging: {next: <full URL>}}
 *   Ashby           POST job.list {status[], limit, cursor}     {success, results, moreDataAvailable, nextCursor}
 *
 * and its incremental filter, strictly (a malformed value is refused as the vendor would):
 *
 *   Greenhouse v1   updated_after=<ISO-8601>           inclusive; kept in the next/last links
 *   Greenhouse v3   updated_at=gte|lte|gt|lt|<ISO>     carried inside the cursor
 *   Lever           updated_at_start / _end=<ms>       inclusive; 400 beside any filter but confidentiality
 *   Workable        updated_after=<ISO basic | unix s> strictly after; kept in paging.next
 *   Ashby           syncToken (from the last page)     jobs changed since that listing began, any status
 *
 * A tenant's jobs are its `jobRecords` (set through PUT /_sandbox/jobs or `Sandbox.setJobs`, which
 * stamps `updatedAt` whenever a job is added or changed), or, when none were set, its `spec.jobs` ids
 * as open jobs named "Job <id>". Every listing call is kept in the tenant's `jobListings`, so tests can
 * see which filter a run sent.
 */
import type { Tenant } from './state.ts';
import { reply, type SandboxReply, type SandboxRequest } from './wire.ts';

export interface SandboxJob {
  id: string;
  title: string;
  requisitionCode?: string | null;
  location?: string | null;
  status: 'open' | 'closed';
  /** ms epoch; omitted in setJobs = kept while the job is unchanged, now when it is new or changed. */
  updatedAt?: number;
}

/** One job listing call as the sandbox received it (query string, and Ashby's JSON body). */
export interface JobListing {
  at: number;
  query: Record<string, string>;
  body?: Record<string, unknown>;
}

function record(tenant: Tenant, req: SandboxRequest | null, body?: Record<string, unknown>): void {
  tenant.jobListings.push({ at: Date.now(), query: req ? Object.fromEntries(req.query) : {}, ...(body ? { body } : {}) });
}

const stamp = (j: SandboxJob): number => j.updatedAt ?? 0;

/** Strict ISO-8601 instant with a zone (what Greenhouse accepts), as ms; undefined when malformed. */
function isoInstant(raw: string): number | undefined {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})$/.test(raw)) return undefined;
  const ms = Date.parse(raw);
  return Number.isNaN(ms) ? undefined : ms;
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
  // Kept as the vendor's own text (for the links) and as a predicate on the job's updated stamp.
  let updated: string | null = null;
  const cursor = req.query.get('cursor');
  if (version === 'v3' && cursor !== null) {
    if ([...req.query.keys()].length !== 1) return reply(422, { message: 'cursor must be the only query parameter' });
    const c = decode<{ o: number; p: number; s: string | null; u?: string | null }>(cursor);
    if (!c) return reply(422, { message: 'invalid cursor' });
    ({ o: offset, p: perPage, s: status } = c);
    updated = c.u ?? null;
  } else {
    updated = req.query.get(version === 'v1' ? 'updated_after' : 'updated_at');
    perPage = clamp(req.query.get('per_page'), 100, 500);
    if (perPage === undefined) return reply(422, { message: 'per_page must be between 1 and 500' });
    if (version === 'v1') {
      const page = clamp(req.query.get('page'), 1, 1_000_000);
      if (page === undefined) return reply(422, { message: 'page must be a positive integer' });
      offset = (page - 1) * perPage;
    }
  }
  let since: (ms: number) => boolean = () => true;
  if (updated !== null) {
    const m = version === 'v1' ? ['', 'gte', updated] : /^(gte|lte|gt|lt)\|(.+)$/.exec(updated);
    const at = m ? isoInstant(m[2]!) : undefined;
    const param = version === 'v1' ? 'updated_after' : 'updated_at';
    if (!m || at === undefined) return reply(422, { message: `${param} must be ${version === 'v1' ? 'an ISO-8601 timestamp' : 'gte|lte|gt|lt followed by | and an ISO-8601 timestamp'}` });
    const op = m[1];
    since = (ms) => (op === 'gte' ? ms >= at : op === 'gt' ? ms > at : op === 'lte' ? ms <= at : ms < at);
  }
  record(tenant, req);
  const all = jobsOf(tenant).filter((j) => (!status || j.status === status) && since(stamp(j)));
  const slice = all.slice(offset, offset + perPage);
  const links: string[] = [];
  if (offset + perPage < all.length) {
    if (version === 'v1') {
      const filters = `${status ? `&status=${status}` : ''}${updated ? `&updated_after=${encodeURIComponent(updated)}` : ''}`;
      const q = (page: number): string => `${base}?page=${page}&per_page=${perPage}${filters}`;
      links.push(`<${q(offset / perPage + 2)}>; rel="next"`, `<${q(Math.ceil(all.length / perPage))}>; rel="last"`);
    } else {
      links.push(`<${base}?cursor=${encode({ o: offset + perPage, p: perPage, s: status, u: updated })}>; rel="next"`);
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
  const start = req.query.get('updated_at_start');
  const end = req.query.get('updated_at_end');
  if (start !== null || end !== null) {
    // Lever: the updated_at range may only be combined with confidentiality (paging aside).
    const other = [...req.query.keys()].filter((k) => !['updated_at_start', 'updated_at_end', 'confidentiality', 'limit', 'offset'].includes(k));
    if (other.length) return reply(400, { code: 'BadRequestError', message: `updated_at_start and updated_at_end cannot be combined with ${other.join(', ')}` });
    if ([start, end].some((v) => v !== null && !/^\d+$/.test(v))) return reply(400, { code: 'BadRequestError', message: 'updated_at_start and updated_at_end must be timestamps in milliseconds' });
  }
  record(tenant, req);
  const all = jobsOf(tenant).filter(
    (j) =>
      (!state || (state === 'published' ? j.status === 'open' : j.status === 'closed')) &&
      (start === null || stamp(j) >= Number(start)) &&
      (end === null || stamp(j) <= Number(end)),
  );
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
  const updatedAfter = req.query.get('updated_after');
  let after = -Infinity;
  if (updatedAfter !== null) {
    const basic = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(updatedAfter);
    const ms = basic ? Date.UTC(+basic[1]!, +basic[2]! - 1, +basic[3]!, +basic[4]!, +basic[5]!, +basic[6]!) : /^\d+$/.test(updatedAfter) ? Number(updatedAfter) * 1000 : NaN;
    if (Number.isNaN(ms)) return reply(422, { error: 'updated_after must be an ISO-8601 basic timestamp (20150708T115616Z) or unix seconds' });
    after = ms;
  }
  record(tenant, req);
  const all = jobsOf(tenant).filter((j) => (!state || (state === 'published' ? j.status === 'open' : j.status === 'closed')) && stamp(j) > after);
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
  const filters = `${state ? `&state=${state}` : ''}${updatedAfter ? `&updated_after=${encodeURIComponent(updatedAfter)}` : ''}`;
  const next = nextJob ? `${req.origin}/workable/${subdomain}/spi/v3/jobs?limit=${limit}${filters}&since_id=${encodeURIComponent(nextJob.id)}` : undefined;
  return reply(200, { jobs, paging: next ? { next } : {} });
}

export function ashbyJobList(body: Record<string, unknown>, tenant: Tenant): SandboxReply {
  const limit = body.limit === undefined ? 100 : Number(body.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) return reply(200, { success: false, errors: ['invalid_input'], errorInfo: { code: 'invalid_input', message: 'limit must be 1..100' } });
  // The cursor carries when the listing began: the last page's syncToken is "changes since then".
  const page = typeof body.cursor === 'string' ? decode<{ i: number; t: number }>(body.cursor) : { i: 0, t: Date.now() };
  if (!page || typeof page.i !== 'number' || typeof page.t !== 'number') return reply(200, { success: false, errors: ['invalid_cursor'], errorInfo: { code: 'invalid_cursor', message: 'invalid cursor' } });
  const offset = page.i;
  let since = -Infinity;
  if (body.syncToken !== undefined) {
    const token = typeof body.syncToken === 'string' ? decode<{ t: number }>(body.syncToken) : undefined;
    // Assumption (unconfirmed): Ashby names a token it cannot use like this (expiry behaviour is undocumented).
    if (typeof token?.t !== 'number') return reply(200, { success: false, errors: ['invalid_sync_token'], errorInfo: { code: 'invalid_sync_token', message: 'The sync token is invalid or expired' } });
    since = token.t;
  }
  record(tenant, null, body);
  const statuses = Array.isArray(body.status) ? (body.status as string[]) : ['Open', 'Closed', 'Archived'];
  const all = jobsOf(tenant).filter((j) => statuses.includes(j.status === 'open' ? 'Open' : 'Closed') && stamp(j) >= since);
  const results = all.slice(offset, offset + limit).map((j) => ({
    id: j.id,
    title: j.title,
    status: j.status === 'open' ? 'Open' : 'Closed',
    customRequisitionId: j.requisitionCode ?? null,
    locationName: j.location ?? null,
    updatedAt: iso(j.updatedAt),
  }));
  const more = offset + limit < all.length;
  return reply(200, { success: true, results, moreDataAvailable: more, ...(more ? { nextCursor: encode({ i: offset + limit, t: page.t }) } : { syncToken: encode({ t: page.t }) }) });
}
