/**
 * The sandbox's memory: tenants (one per emulated customer account) with their credentials, users
 * and jobs, the records each vendor API created, faults waiting to fire, and request counts.
 * Everything is plain data so tests can read it back through `/_sandbox/…` or the handle.
 */
import { randomUUID } from 'node:crypto';
import type { Platform } from '../registry/integration.ts';
import type { JobListing, SandboxJob } from './jobs.ts';

export interface RateWindow {
  limit: number;
  windowMs: number;
}

export interface GenericReceiverSpec {
  authStyle: 'none' | 'header' | 'bearer' | 'basic';
  headerName?: string;
  /** Dotted paths that must be present in the JSON body, else 422. */
  requiredFields?: string[];
}

export interface TenantSpec {
  platform: Platform;
  /** Tenant name; for Workable the account subdomain, for generic the receiver's path segment. */
  tenant: string;
  /**
   * greenhouse: { apiKey } (v1) and/or { clientId, clientSecret } (v3); lever: { apiKey };
   * workable: { token, clientId? }; ashby: { apiKey }; generic: { apiKey | token | username+password, signingSecret }.
   */
  credentials: Record<string, string>;
  /** Valid On-Behalf-Of / v3 `sub` (Greenhouse) and `perform_as` (Lever) user ids. */
  users?: string[];
  /** Known job ids (Greenhouse ids, Lever posting ids, Workable shortcodes, Ashby job ids). */
  jobs?: string[];
  /** Enforced limit per fixed window; undefined = the vendor's documented default, null = none. */
  rateLimit?: RateWindow | null;
  generic?: GenericReceiverSpec;
}

export type SandboxRecord = Record<string, unknown> & { id: string | number };

export class Tenant {
  readonly candidates = new Map<string, SandboxRecord>();
  readonly applications = new Map<string, SandboxRecord>();
  readonly attachments = new Map<string, SandboxRecord>();
  /** Generic receivers: Idempotency-Key → the first answer. */
  readonly idempotency = new Map<string, { status: number; body: unknown }>();
  /** The job listing (sandbox/jobs.ts), in listing order; empty = spec.jobs as open jobs. */
  readonly jobRecords = new Map<string, SandboxJob>();
  /** Job listing calls received, oldest first (which incremental filter a run sent). */
  readonly jobListings: JobListing[] = [];
  window = { startedAt: 0, count: 0 };
  /** Secondary indexes (`email:…`, `apps:<candidateId>`, `atts:<applicationId>`) so lookups stay O(1) under benchmark load. */
  private readonly index = new Map<string, SandboxRecord[]>();

  constructor(readonly spec: TenantSpec) {}

  get key(): string {
    return tenantKey(this.spec.platform, this.spec.tenant);
  }

  hasJob(id: string | number): boolean {
    return (this.spec.jobs ?? []).includes(String(id)) || this.jobRecords.has(String(id));
  }

  indexed(key: string): SandboxRecord[] {
    return this.index.get(key) ?? [];
  }

  addToIndex(key: string, rec: SandboxRecord): void {
    const list = this.index.get(key);
    if (list) list.push(rec);
    else this.index.set(key, [rec]);
  }

  isUser(id: string | undefined): boolean {
    if (!id) return false;
    return this.spec.users === undefined || this.spec.users.includes(id);
  }
}

export function tenantKey(platform: Platform, tenant: string): string {
  return `${platform}:${tenant}`;
}

export type FaultKind = 'latency' | 'error' | 'rate_limit' | 'hang' | 'reset' | 'bad_credentials' | 'respond' | 'ghost';

export interface FaultSpec {
  kind: FaultKind;
  /** Scope: all platforms / tenants when omitted. */
  platform?: Platform;
  tenant?: string;
  method?: string;
  /** Substring of the path after the vendor prefix, e.g. "/v1/candidates" or "application.create". */
  path?: string;
  /** Fire on the next N matching requests only (success-after-N-failures); forever when omitted. */
  times?: number;
  /** latency: added delay. */
  ms?: number;
  /**
   * error: HTTP status (default 503) and the share of matching requests that fail (default 1).
   * ghost: the vendor commits the write, then the answer is lost — `status` (default 500), the
   * connection reset when `status` is 0, or, with `hangMs`, the answer held that long and then
   * dropped (a client whose request timeout is shorter sees its own timeout).
   */
  status?: number;
  rate?: number;
  /** rate_limit: Retry-After seconds (default 1). */
  retryAfterSeconds?: number;
  /** hang (and ghost, when set): how long to hold the socket before dropping it (hang: default 120 s). */
  hangMs?: number;
  /** respond: a canned answer. */
  body?: unknown;
  headers?: Record<string, string>;
}

export interface Fault extends FaultSpec {
  id: string;
  fired: number;
}

export interface FileEntry {
  bytes: Buffer;
  contentType: string;
}

export class SandboxState {
  readonly tenants = new Map<string, Tenant>();
  /** `${platform}:${credential}` → tenant (API keys, tokens, client ids). */
  readonly byCredential = new Map<string, Tenant>();
  /** Greenhouse v3 access tokens. */
  readonly tokens = new Map<string, { tenant: Tenant; sub: string; expiresAt: number }>();
  /** Ashby file upload handles. */
  /** Ashby upload handles: the form fields the storage expects, and the bytes once uploaded. */
  readonly uploads = new Map<string, { tenant: Tenant; fileName: string; contentType: string; bytes: Buffer | null; fields: Record<string, string> }>();
  readonly files = new Map<string, FileEntry>();
  faults: Fault[] = [];
  readonly stats = { requests: 0, byPlatform: {} as Record<string, number>, byStatus: {} as Record<string, number>, faultsFired: 0 };
  private seq = 1000;

  nextNumericId(): number {
    return ++this.seq;
  }

  addTenant(spec: TenantSpec): Tenant {
    const existing = this.tenants.get(tenantKey(spec.platform, spec.tenant));
    if (existing) this.removeTenant(existing);
    const tenant = new Tenant(spec);
    this.tenants.set(tenant.key, tenant);
    for (const name of ['apiKey', 'token', 'clientId']) {
      const value = spec.credentials[name];
      if (value) this.byCredential.set(`${spec.platform}:${value}`, tenant);
    }
    return tenant;
  }

  private removeTenant(tenant: Tenant): void {
    this.tenants.delete(tenant.key);
    for (const [k, t] of this.byCredential) if (t === tenant) this.byCredential.delete(k);
  }

  tenant(platform: Platform, name: string): Tenant | undefined {
    return this.tenants.get(tenantKey(platform, name));
  }

  addFault(spec: FaultSpec): Fault {
    const fault: Fault = { ...spec, id: randomUUID(), fired: 0 };
    this.faults.push(fault);
    return fault;
  }

  clearFaults(id?: string): void {
    this.faults = id ? this.faults.filter((f) => f.id !== id) : [];
  }

  reset(): void {
    this.tenants.clear();
    this.byCredential.clear();
    this.tokens.clear();
    this.uploads.clear();
    this.faults = [];
    this.stats.requests = 0;
    this.stats.byPlatform = {};
    this.stats.byStatus = {};
    this.stats.faultsFired = 0;
  }
}
