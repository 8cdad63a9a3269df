/**
 * The ATS sandbox: one node:http server emulating Greenhouse, Lever, Workable, Ashby and a generic
 * REST receiver strictly enough that a connector bug shows up as the error the real API would give.
 *
 *   /greenhouse/…              Harvest v1 + v3 and the v3 token endpoint (/greenhouse/auth/token)
 *   /lever/v1/…                Lever data API
 *   /workable/{subdomain}/spi/v3/…
 *   /ashby/{method}            Ashby RPC (+ /ashby/_uploads/{handle} for resume uploads)
 *   /generic/{tenant}/…        generic receivers
 *   /_sandbox/…                control and assertions: tenants, faults, candidates, applications,
 *                              attachments, stats, reset, files (resumes on loopback)
 *
 * Order for each vendor request: find the tenant → count it → faults that match fire (latency,
 * bad credentials, 5xx, 429, hang, reset, canned answer, ghost) → the tenant's rate limit → the vendor.
 * A ghost fault lets the vendor commit the write and then loses the answer (a 500, a reset, or an
 * answer held past the client's timeout): what a client sees when the ATS did the work but the
 * response never arrived.
 */
import { createHash } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DocumentRef } from '../lib/application.ts';
import { PLATFORMS, type Platform } from '../registry/integration.ts';
import { ashby } from './ashby.ts';
import { generic } from './generic.ts';
import { greenhouse } from './greenhouse.ts';
import { lever } from './lever.ts';
import { SandboxState, type Fault, type FaultSpec, type SandboxRecord, type Tenant, type TenantSpec } from './state.ts';
import type { VendorEmulation } from './vendor.ts';
import type { JobListing, SandboxJob } from './jobs.ts';
import { fireWebhooks, type WebhookResult, type WebhookSpec } from './webhooks.ts';
import { workable } from './workable.ts';
import { reply, type SandboxReply, type SandboxRequest } from './wire.ts';

export type { FaultSpec, TenantSpec } from './state.ts';

const VENDORS: Record<string, VendorEmulation> = { greenhouse, lever, workable, ashby, generic };
const MAX_BODY_BYTES = 32 * 1024 * 1024;

/** A small document that starts like a PDF, served as the default resume. */
export const SAMPLE_RESUME = Buffer.from(
  '%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n% ats-relay sandbox resume: Ada Byron, analytical engines\ntrailer << /Root 1 0 R >>\n%%EOF\n',
);

export interface SandboxOptions {
  /** 0 = any free port. */
  port?: number;
  host?: string;
}

export interface Sandbox {
  url: string;
  state: SandboxState;
  /** The apiBaseUrl (or, for generic, the receiver URL) an integration uses to reach this sandbox. */
  urlFor(platform: Platform, tenant?: string): string;
  addTenant(spec: TenantSpec): Tenant;
  addFault(spec: FaultSpec): Fault;
  clearFaults(id?: string): void;
  /** Serve a file at /_sandbox/files/{name}; returns the event's DocumentRef for it. */
  addFile(name: string, bytes: Buffer, contentType: string): DocumentRef;
  candidates(platform: Platform, tenant: string): SandboxRecord[];
  applications(platform: Platform, tenant: string): SandboxRecord[];
  attachments(platform: Platform, tenant: string): SandboxRecord[];
  reset(): void;
  close(): Promise<void>;
  /** Replace a tenant's job listing (sandbox/jobs.ts), in listing order. */
  setJobs(platform: Platform, tenant: string, jobs: SandboxJob[]): void;
  /** The job listing calls a tenant received, oldest first. */
  jobListings(platform: Platform, tenant: string): JobListing[];
  /** Send signed vendor webhooks to a URL (sandbox/webhooks.ts), with faults. */
  fireWebhooks(specs: WebhookSpec[], opts?: { outOfOrder?: boolean }): Promise<WebhookResult[]>;
}

function readBody(req: IncomingMessage): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        resolve(null);
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, r: SandboxReply, extra?: Record<string, string>): void {
  if (res.destroyed || res.headersSent) return;
  const isBuffer = Buffer.isBuffer(r.body);
  const payload = r.body === undefined ? Buffer.alloc(0) : isBuffer ? (r.body as Buffer) : Buffer.from(JSON.stringify(r.body));
  const headers: Record<string, string> = {
    ...(r.body === undefined || isBuffer ? {} : { 'content-type': 'application/json; charset=utf-8' }),
    ...extra,
    ...r.headers,
    'content-length': String(payload.length),
  };
  res.writeHead(r.status, headers);
  res.end(payload);
}

function faultMatches(f: Fault, vendor: VendorEmulation, tenant: Tenant | undefined, req: SandboxRequest): boolean {
  if (f.platform && f.platform !== vendor.platform) return false;
  if (f.tenant && tenant?.spec.tenant !== f.tenant) return false;
  if (f.method && f.method.toUpperCase() !== req.method) return false;
  if (f.path && !req.path.includes(f.path)) return false;
  return f.times === undefined || f.fired < f.times;
}

export async function startSandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  const state = new SandboxState();
  const hung = new Set<Socket>();
  let baseUrl = '';

  const addFile = (name: string, bytes: Buffer, contentType: string): DocumentRef => {
    state.files.set(name, { bytes, contentType });
    return {
      url: `${baseUrl}/_sandbox/files/${encodeURIComponent(name)}`,
      fileName: name,
      contentType,
      sizeBytes: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
    };
  };

  const urlFor = (platform: Platform, tenant?: string): string => {
    switch (platform) {
      case 'workable':
        return `${baseUrl}/workable/{subdomain}`;
      case 'generic':
        return `${baseUrl}/generic/${encodeURIComponent(tenant ?? 'default')}/applications`;
      default:
        return `${baseUrl}/${platform}`;
    }
  };

  const records = (kind: 'candidates' | 'applications' | 'attachments', platform: Platform, tenant: string): SandboxRecord[] => [
    ...(state.tenant(platform, tenant)?.[kind].values() ?? []),
  ];

  /**
   * Hold the answer: the socket stays open, unanswered, for `ms` and is then dropped. A held socket
   * keeps neither the process (the timer is unref'd) nor `close()` (which destroys it) waiting.
   */
  function hold(res: ServerResponse, ms: number): void {
    const socket = res.socket;
    if (!socket || socket.destroyed) return; // the client gave up already: nothing to hold
    hung.add(socket);
    const timer = setTimeout(() => socket.destroy(), ms).unref();
    socket.once('close', () => {
      clearTimeout(timer);
      hung.delete(socket);
    });
  }

  function resetConnection(res: ServerResponse): void {
    const socket = res.socket as (Socket & { resetAndDestroy?: () => void }) | null;
    if (socket?.resetAndDestroy) socket.resetAndDestroy();
    else socket?.destroy();
  }

  /** Apply the faults matching this request; returns true when one of them answered (or dropped) it. */
  async function applyFaults(vendor: VendorEmulation, tenant: Tenant | undefined, sreq: SandboxRequest, res: ServerResponse): Promise<boolean> {
    if (state.faults.length === 0) return false;
    state.faults = state.faults.filter((f) => f.times === undefined || f.fired < f.times);
    for (const f of state.faults) {
      if (!faultMatches(f, vendor, tenant, sreq)) continue;
      if (f.kind === 'error' && Math.random() >= (f.rate ?? 1)) continue;
      f.fired++;
      state.stats.faultsFired++;
      switch (f.kind) {
        case 'latency':
          await sleep(f.ms ?? 0);
          continue;
        case 'bad_credentials':
          sreq.forceBadCredentials = true;
          continue;
        case 'error': {
          const status = f.status ?? 503;
          send(res, reply(status, vendor.errorBody(status, 'Injected failure (sandbox)')));
          return true;
        }
        case 'rate_limit': {
          const seconds = f.retryAfterSeconds ?? 1;
          const window = (tenant && (tenant.spec.rateLimit ?? vendor.defaultRateLimit(sreq, tenant))) || { limit: 0, windowMs: seconds * 1000 };
          const headers = {
            ...vendor.rateHeaders(window, 0, Math.ceil(Date.now() / 1000) + seconds, true),
            'retry-after': String(seconds),
          };
          send(res, reply(429, vendor.errorBody(429, 'Rate limit exceeded'), headers));
          return true;
        }
        case 'hang':
          hold(res, f.hangMs ?? 120_000);
          return true;
        case 'reset':
          resetConnection(res);
          return true;
        case 'respond':
          send(res, reply(f.status ?? 500, f.body, f.headers));
          return true;
        case 'ghost': {
          await vendor.handle(sreq, state, tenant);
          if (f.hangMs !== undefined) {
            hold(res, f.hangMs);
          } else if (f.status === 0) {
            resetConnection(res);
          } else {
            send(res, reply(f.status ?? 500, vendor.errorBody(f.status ?? 500, 'Injected failure after the write committed (sandbox)')));
          }
          return true;
        }
      }
    }
    return false;
  }

  /** The tenant's fixed window: rate headers for every answer, or a 429 when it is used up. */
  function rateLimit(vendor: VendorEmulation, tenant: Tenant | undefined, sreq: SandboxRequest): { headers: Record<string, string>; throttled?: SandboxReply } {
    if (!tenant) return { headers: {} };
    const limit = tenant.spec.rateLimit !== undefined ? tenant.spec.rateLimit : vendor.defaultRateLimit(sreq, tenant);
    if (!limit) return { headers: {} };
    const now = Date.now();
    const w = tenant.window;
    if (now - w.startedAt >= limit.windowMs) {
      w.startedAt = now;
      w.count = 0;
    }
    w.count++;
    const resetAt = w.startedAt + limit.windowMs;
    const resetSeconds = Math.ceil(resetAt / 1000);
    if (w.count > limit.limit) {
      const headers = { ...vendor.rateHeaders(limit, 0, resetSeconds, true), 'retry-after': String(Math.max(1, Math.ceil((resetAt - now) / 1000))) };
      return { headers, throttled: reply(429, vendor.errorBody(429, 'Rate limit exceeded'), headers) };
    }
    return { headers: vendor.rateHeaders(limit, limit.limit - w.count, resetSeconds, false) };
  }

  async function vendorRequest(vendor: VendorEmulation, sreq: SandboxRequest, res: ServerResponse): Promise<void> {
    const tenant = vendor.tenantOf(sreq, state);
    state.stats.requests++;
    state.stats.byPlatform[vendor.platform] = (state.stats.byPlatform[vendor.platform] ?? 0) + 1;
    res.once('finish', () => {
      const k = String(res.statusCode);
      state.stats.byStatus[k] = (state.stats.byStatus[k] ?? 0) + 1;
    });
    if (await applyFaults(vendor, tenant, sreq, res)) return;
    const limited = rateLimit(vendor, tenant, sreq);
    if (limited.throttled) return send(res, limited.throttled);
    send(res, await vendor.handle(sreq, state, tenant), limited.headers);
  }

  function admin(method: string, path: string, query: URLSearchParams, body: Buffer, contentType: string): SandboxReply {
    const json = (): Record<string, unknown> | undefined => {
      try {
        const v = JSON.parse(body.toString('utf8')) as unknown;
        return v && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
      } catch {
        return undefined;
      }
    };
    const platform = query.get('platform') as Platform | null;
    const tenantName = query.get('tenant');
    if (path === '/health') return reply(200, { ok: true });
    if (path === '/tenants' && method === 'POST') {
      const spec = json() as TenantSpec | undefined;
      if (!spec || !PLATFORMS.includes(spec.platform) || typeof spec.tenant !== 'string' || !spec.tenant || typeof spec.credentials !== 'object') {
        return reply(400, { error: 'expected {platform, tenant, credentials, users?, jobs?, rateLimit?, generic?}' });
      }
      addTenantChecked(spec);
      return reply(201, { platform: spec.platform, tenant: spec.tenant, apiBaseUrl: urlFor(spec.platform, spec.tenant) });
    }
    if (path === '/tenants' && method === 'GET') {
      return reply(200, [...state.tenants.values()].map((t) => ({ platform: t.spec.platform, tenant: t.spec.tenant, jobs: t.spec.jobs ?? [] })));
    }
    if (path === '/faults' && method === 'POST') {
      const spec = json() as FaultSpec | undefined;
      const kinds = ['latency', 'error', 'rate_limit', 'hang', 'reset', 'bad_credentials', 'respond', 'ghost'];
      if (!spec || !kinds.includes(spec.kind)) return reply(400, { error: `expected {kind: ${kinds.join('|')}, platform?, tenant?, path?, method?, times?, …}` });
      return reply(201, state.addFault(spec));
    }
    if (path === '/faults' && method === 'GET') return reply(200, state.faults);
    if (path.startsWith('/faults') && method === 'DELETE') {
      state.clearFaults(path.split('/')[2] || undefined);
      return reply(204);
    }
    if ((path === '/candidates' || path === '/applications' || path === '/attachments') && method === 'GET') {
      if (!platform || !tenantName) return reply(400, { error: 'platform and tenant query parameters are required' });
      return reply(200, records(path.slice(1) as 'candidates', platform, tenantName));
    }
    if (path === '/jobs' && method === 'PUT') {
      const list = (() => {
        try {
          return JSON.parse(body.toString('utf8')) as SandboxJob[];
        } catch {
          return undefined;
        }
      })();
      if (!platform || !tenantName || !Array.isArray(list)) return reply(400, { error: 'PUT /jobs?platform=&tenant= with [{id, title, status, requisitionCode?, location?, updatedAt?}]' });
      if (!state.tenant(platform, tenantName)) return reply(404, { error: 'no such tenant' });
      setJobs(platform, tenantName, list);
      return reply(204);
    }
    if (path === '/job-listings' && method === 'GET') {
      if (!platform || !tenantName) return reply(400, { error: 'platform and tenant query parameters are required' });
      return reply(200, state.tenant(platform, tenantName)?.jobListings ?? []);
    }
    if (path === '/stats' && method === 'GET') return reply(200, { ...state.stats, tenants: state.tenants.size, faults: state.faults.length });
    if (path === '/reset' && method === 'POST') {
      resetAll();
      return reply(204);
    }
    const file = /^\/files\/([^/]+)$/.exec(path);
    if (file && method === 'GET') {
      const entry = state.files.get(decodeURIComponent(file[1]!));
      return entry ? { status: 200, headers: { 'content-type': entry.contentType }, body: entry.bytes } : reply(404, { error: 'no such file' });
    }
    if (file && method === 'PUT') {
      return reply(201, addFile(decodeURIComponent(file[1]!), Buffer.from(body), contentType || 'application/octet-stream'));
    }
    return reply(404, { error: 'unknown sandbox endpoint' });
  }

  function setJobs(platform: Platform, tenantName: string, jobs: SandboxJob[]): void {
    const tenant = state.tenant(platform, tenantName);
    if (!tenant) throw new Error(`no sandbox tenant ${platform}:${tenantName}`);
    const before = new Map(tenant.jobRecords);
    const now = Date.now();
    tenant.jobRecords.clear();
    for (const j of jobs) {
      const id = String(j.id);
      const prev = before.get(id);
      // As in the vendors: editing or closing a job moves its updated stamp, an untouched job keeps it.
      const unchanged = prev && prev.title === j.title && prev.status === j.status && (prev.requisitionCode ?? null) === (j.requisitionCode ?? null) && (prev.location ?? null) === (j.location ?? null);
      tenant.jobRecords.set(id, { ...j, id, updatedAt: j.updatedAt ?? (unchanged ? prev.updatedAt : now) });
    }
  }

  function addTenantChecked(spec: TenantSpec): Tenant {
    return state.addTenant({ ...spec, jobs: spec.jobs?.map(String) });
  }

  function resetAll(): void {
    state.reset();
    state.files.clear();
    addFile('resume.pdf', SAMPLE_RESUME, 'application/pdf');
  }

  const server = http.createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      if (body === null) return send(res, reply(413, { error: 'body too large' }));
      const raw = req.url ?? '/';
      const q = raw.indexOf('?');
      const pathname = q < 0 ? raw : raw.slice(0, q);
      const query = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
      const slash = pathname.indexOf('/', 1);
      const prefix = pathname.slice(1, slash < 0 ? undefined : slash);
      const rest = slash < 0 ? '/' : pathname.slice(slash);
      const method = (req.method ?? 'GET').toUpperCase();
      if (prefix === '_sandbox' && rest === '/webhooks' && method === 'POST') {
        const spec = (() => {
          try {
            return JSON.parse(body.toString('utf8')) as { deliveries?: WebhookSpec[]; outOfOrder?: boolean };
          } catch {
            return undefined;
          }
        })();
        if (!Array.isArray(spec?.deliveries)) return send(res, reply(400, { error: 'expected {deliveries: [{platform, url, secret, leverTokens?, kind, externalApplicationId, …}], outOfOrder?}' }));
        return send(res, reply(200, { results: await fireWebhooks(spec.deliveries, { outOfOrder: spec.outOfOrder === true }) }));
      }
      if (prefix === '_sandbox') return send(res, admin(method, rest, query, body, String(req.headers['content-type'] ?? '')));
      const vendor = VENDORS[prefix];
      if (!vendor) return send(res, reply(404, { error: 'unknown vendor prefix' }));
      await vendorRequest(vendor, { method, path: rest, query, headers: req.headers, body, origin: `http://${req.headers.host ?? 'localhost'}`, forceBadCredentials: false }, res);
    })().catch((err: unknown) => {
      send(res, reply(500, { error: `sandbox error: ${(err as Error).message}` }));
    });
  });
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  baseUrl = `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${address.port}`;
  resetAll();

  let closing: Promise<void> | undefined;
  return {
    get url() {
      return baseUrl;
    },
    state,
    urlFor,
    addTenant: addTenantChecked,
    addFault: (spec) => state.addFault(spec),
    clearFaults: (id) => state.clearFaults(id),
    addFile,
    candidates: (p, t) => records('candidates', p, t),
    applications: (p, t) => records('applications', p, t),
    attachments: (p, t) => records('attachments', p, t),
    reset: resetAll,
    setJobs,
    jobListings: (platform, tenantName) => [...(state.tenant(platform, tenantName)?.jobListings ?? [])],
    fireWebhooks: (specs, o) => fireWebhooks(specs, o),
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const s of hung) s.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
