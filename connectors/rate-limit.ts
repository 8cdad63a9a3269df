/**
 * Staying under each ATS's rate limit instead of discovering it: a token bucket per integration
 * with the vendor's documented budget, pushed back further whenever the ATS tells us to wait
 * (429 + Retry-After, or a window exhausted per its X-RateLimit-* / X-Rate-Limit-* headers).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { IncomingHttpHeaders } from 'node:http';
import type { Platform } from '../registry/integration.ts';
import { AtsError } from './ats-error.ts';

export interface BucketSpec {
  /** Burst size: requests that may go out back to back. */
  capacity: number;
  /** Sustained rate. */
  refillPerSecond: number;
}

/** Vendor budgets per integration; null = no client-side limit. */
export const DEFAULT_RATE_LIMITS: Readonly<Record<Platform, BucketSpec | null>> = {
  // Harvest v1: limit per 10-second window from X-RateLimit-Limit, docs example 50. v3 numbers are unconfirmed; assumed the same.
  greenhouse: { capacity: 50, refillPerSecond: 5 },
  // Unconfirmed (3rd-party): about 10 requests/s with bursts to 20.
  lever: { capacity: 20, refillPerSecond: 10 },
  // Account tokens: 10 requests / 10 s (partner and OAuth tokens get 50 / 10 s, see WORKABLE_PARTNER_RATE_LIMIT).
  workable: { capacity: 10, refillPerSecond: 1 },
  // Unconfirmed: Ashby publishes no numbers; assumed 20 burst, 10/s.
  ashby: { capacity: 20, refillPerSecond: 10 },
  generic: null,
};
export const WORKABLE_PARTNER_RATE_LIMIT: BucketSpec = { capacity: 50, refillPerSecond: 5 };

type Headers = IncomingHttpHeaders | Record<string, string | string[] | undefined>;

function header(headers: Headers, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * A reset header may be epoch milliseconds, epoch seconds, seconds from now or an HTTP date
 * (vendors differ and several do not say); return milliseconds from `nowMs`.
 */
function resetToDelayMs(value: string, nowMs: number): number | undefined {
  const n = Number(value);
  if (value.trim() !== '' && Number.isFinite(n)) {
    if (n > 1e12) return Math.max(0, n - nowMs);
    if (n > 1e9) return Math.max(0, n * 1000 - nowMs);
    return Math.max(0, n * 1000);
  }
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
}

/**
 * How long the ATS asked us to wait, from `Retry-After` (seconds or HTTP date) or, when the window
 * is exhausted or we were throttled, from `X-RateLimit-Reset` / `X-Rate-Limit-Reset`.
 */
export function retryAfterMsFrom(headers: Headers, status: number, nowMs = Date.now()): number | undefined {
  const retryAfter = header(headers, 'retry-after');
  if (retryAfter !== undefined) {
    // Retry-After is delta-seconds or an HTTP date, never an epoch number.
    if (/^\s*\d+(\.\d+)?\s*$/.test(retryAfter)) return Math.round(Number(retryAfter) * 1000);
    const date = Date.parse(retryAfter);
    if (!Number.isNaN(date)) return Math.max(0, date - nowMs);
  }
  const remaining = header(headers, 'x-ratelimit-remaining') ?? header(headers, 'x-rate-limit-remaining');
  if (status !== 429 && remaining !== '0') return undefined;
  const reset = header(headers, 'x-ratelimit-reset') ?? header(headers, 'x-rate-limit-reset');
  return reset === undefined ? undefined : resetToDelayMs(reset, nowMs);
}

interface Bucket {
  capacity: number;
  tokens: number;
  updatedAt: number;
  /** Nothing goes out before this time (the ATS told us to wait). */
  blockedUntil: number;
  /** Bumped by every pause: reservations made before it are void and taken again afterwards. */
  generation: number;
}

export interface AcquireOptions {
  signal?: AbortSignal | undefined;
  /** Longer waits fail fast with rate_limited (and retryAfterMs) so the dispatcher can reschedule. */
  maxWaitMs: number;
}

function tooLong(waitMs: number): AtsError {
  return new AtsError('rate_limited', `client-side rate limit: next slot in ${Math.ceil(waitMs)} ms`, {
    retryAfterMs: Math.ceil(waitMs),
    context: { clientSide: true },
  });
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  constructor(private readonly now: () => number = Date.now) {}

  private bucket(key: string, capacity: number): Bucket {
    let b = this.buckets.get(key);
    if (!b) {
      b = { capacity, tokens: capacity, updatedAt: this.now(), blockedUntil: 0, generation: 0 };
      this.buckets.set(key, b);
    }
    return b;
  }

  /**
   * Take one token for `key`, waiting for it when the bucket is empty. Tokens are reserved up front
   * (the bucket may go negative), so concurrent callers queue fairly without polling. While the ATS
   * has asked us to pause, everyone waits; afterwards they queue for tokens again, so the end of a
   * pause is not a thundering herd.
   */
  async acquire(key: string, spec: BucketSpec | null, opts: AcquireOptions): Promise<void> {
    const b = this.bucket(key, spec?.capacity ?? 0);
    for (;;) {
      const now = this.now();
      const pausedMs = b.blockedUntil - now;
      if (pausedMs > 0) {
        if (pausedMs > opts.maxWaitMs) throw tooLong(pausedMs);
        await sleep(pausedMs, undefined, { signal: opts.signal });
        continue;
      }
      if (!spec) return;
      b.capacity = spec.capacity;
      if (now > b.updatedAt) {
        b.tokens = Math.min(spec.capacity, b.tokens + ((now - b.updatedAt) / 1000) * spec.refillPerSecond);
        b.updatedAt = now;
      }
      b.tokens -= 1;
      const waitMs = b.tokens < 0 ? (-b.tokens / spec.refillPerSecond) * 1000 : 0;
      if (waitMs <= 0) return;
      if (waitMs > opts.maxWaitMs) {
        b.tokens += 1;
        throw tooLong(waitMs);
      }
      const generation = b.generation;
      await sleep(waitMs, undefined, { signal: opts.signal });
      if (b.generation === generation) return;
    }
  }

  /**
   * The ATS said to wait (429, or its window is exhausted): hold every request for `key` until
   * then; the bucket starts full again when the pause ends (a fresh vendor window).
   */
  pause(key: string, forMs: number): void {
    const b = this.bucket(key, 0);
    const until = this.now() + forMs;
    if (until <= b.blockedUntil) return;
    b.blockedUntil = until;
    b.tokens = b.capacity;
    b.updatedAt = until;
    b.generation++;
  }

  forget(key: string): void {
    this.buckets.delete(key);
  }
}
