/**
 * One integration's view of its ATS: every request waits for a rate-limit slot, every answer
 * updates the limiter (429, exhausted window), and a failing answer becomes an AtsError with the
 * vendor's message (secrets scrubbed, truncated), the status, retryAfterMs and the step it was in.
 */
import type { Integration, Platform } from '../registry/integration.ts';
import { truncate } from '../lib/errors.ts';
import { AtsError, codeForStatus, vendorText, type AtsErrorCode } from './ats-error.ts';
import type { HttpRequest, HttpResponse } from './http.ts';
import { retryAfterMsFrom, type BucketSpec } from './rate-limit.ts';
import type { ConnectorDeps } from './types.ts';

export interface VendorRequest extends Omit<HttpRequest, 'signal'> {
  /** Names the step in errors and logs, e.g. "candidate.search". */
  step: string;
}

export interface VendorClientOptions {
  platform: Platform;
  integration: Integration;
  signal: AbortSignal | undefined;
  /** Overrides the vendor's default bucket (e.g. Workable partner tokens). */
  bucket?: BucketSpec | null;
  /** Pulls the human-readable message out of a vendor error body. */
  messageOf: (body: unknown, text: string) => string | undefined;
}

export class VendorClient {
  private readonly bucket: BucketSpec | null;

  constructor(
    private readonly deps: ConnectorDeps,
    private readonly opts: VendorClientOptions,
  ) {
    this.bucket = opts.bucket !== undefined ? opts.bucket : deps.rateLimits[opts.platform];
  }

  get integration(): Integration {
    return this.opts.integration;
  }

  get signal(): AbortSignal | undefined {
    return this.opts.signal;
  }

  async request(req: VendorRequest): Promise<HttpResponse> {
    const key = `${this.opts.platform}:${this.opts.integration.id}`;
    try {
      await this.deps.limiter.acquire(key, this.bucket, { signal: this.opts.signal, maxWaitMs: this.deps.rateLimitMaxWaitMs });
    } catch (err) {
      if (err instanceof AtsError) throw this.withContext(err, req.step);
      throw new AtsError('network', 'aborted while waiting for a rate-limit slot', { cause: err, context: this.context(req.step) });
    }
    let res: HttpResponse;
    try {
      res = await this.deps.http.send({ ...req, signal: this.opts.signal });
    } catch (err) {
      throw err instanceof AtsError ? this.withContext(err, req.step) : err;
    }
    const waitMs = retryAfterMsFrom(res.headers, res.status);
    if (waitMs !== undefined && waitMs > 0) this.deps.limiter.pause(key, waitMs);
    return res;
  }

  /** The AtsError for a non-success answer; `code` overrides the status table. */
  fail(res: HttpResponse, step: string, code?: AtsErrorCode, vendorMessage?: string): AtsError {
    const finalCode = code ?? codeForStatus(res.status);
    const raw = vendorMessage ?? this.opts.messageOf(res.json(), res.text()) ?? res.text().slice(0, 300);
    const message = raw ? vendorText(raw, Object.values(this.opts.integration.credentials)) : undefined;
    // The vendor's own words travel in the message (DLQ header, digest, delivery log): a support
    // engineer tells an unknown job from a bad field from them.
    return new AtsError(finalCode, `${this.opts.platform} ${step} failed: HTTP ${res.status} ${finalCode}${message ? `: ${truncate(message, 300)}` : ''}`, {
      status: res.status,
      retryAfterMs: retryAfterMsFrom(res.headers, res.status),
      vendorMessage: message,
      context: this.context(step),
    });
  }

  /** An AtsError for an answer we cannot use (2xx without the ids we need). */
  unexpected(res: HttpResponse, step: string, what: string): AtsError {
    return new AtsError('unexpected_response', `${this.opts.platform} ${step}: ${what}`, {
      status: res.status,
      context: this.context(step),
    });
  }

  context(step: string): Record<string, unknown> {
    return { platform: this.opts.platform, integrationId: this.opts.integration.id, step };
  }

  private withContext(err: AtsError, step: string): AtsError {
    Object.assign(err.context, this.context(step));
    return err;
  }
}

/** Basic auth with the key as user and an empty password (Greenhouse v1, Lever, Ashby). */
export function basicKeyAuth(key: string): string {
  return `Basic ${Buffer.from(`${key}:`).toString('base64')}`;
}

/** A credential the integration must carry; its absence is a configuration error. */
export function requireCredential(integration: Integration, name: string): string {
  const v = integration.credentials[name];
  if (!v) {
    throw new AtsError('auth_failed', `integration ${integration.id} has no "${name}" credential`, {
      context: { platform: integration.platform, integrationId: integration.id },
    });
  }
  return v;
}

/** Base URL: the integration's override (sandbox, EU host) or the vendor default; no trailing slash. */
export function baseUrl(integration: Integration, vendorDefault: string): string {
  return (integration.apiBaseUrl ?? vendorDefault).replace(/\/+$/, '');
}

export function isSuccess(status: number): boolean {
  return status >= 200 && status < 300;
}
