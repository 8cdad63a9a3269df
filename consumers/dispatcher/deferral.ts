/**
 * Throttling is not failure. When an integration must wait (its ATS answered 429 or its window is
 * used up, our limiter has no slot yet, or another process is delivering the same application) the
 * record is deferred, never failed: no try is used and it never reaches the DLQ for it.
 *
 *   short wait, few of this integration's records already waiting here → wait in process, no slot held
 *   longer wait, or many waiting (a burst)                              → park it on a tier (deferral hop)
 *
 * Parking keeps the partition moving for every other integration on it: a burst of one customer is
 * not held in memory, where it would fill the partition's buffer and stop its fetching. A record
 * parked again waits twice as long each time (to a cap): a customer throttled for hours costs a
 * dozen hops per record, not one every few seconds. Records of one integration parked together are
 * queued at the pace its budget allows (`paceMs` per delivery), so a burst comes back spread over
 * the time the ATS needs for it instead of all at once, to be parked again.
 * Due times are never before the ATS's reset and spread after it, so the window does not reopen
 * on a herd.
 */
import type { RetryTier } from '../../lib/config.ts';

export const DEFERRAL_REASONS = {
  rate_limited: 'the ATS (or our limiter for it) asked to wait',
  lease_held: 'another process is delivering this application right now',
} as const;
export type DeferralReason = keyof typeof DEFERRAL_REASONS;

export interface DeferralOptions {
  /** Longest wait spent in process (without an in-flight slot); longer ones park the record. */
  inProcessMaxWaitMs: number;
  /** Records of one integration waiting in process at once; more park (a burst is not held in memory). */
  maxWaitingPerIntegration: number;
  /** In-process rounds one record may take before it is parked (a wait that keeps being renewed). */
  maxRoundsInProcess: number;
  /** Spread after the earliest allowed time: max(minSpreadMs, wait × spreadRatio). */
  spreadRatio: number;
  minSpreadMs: number;
  /** Wait when the ATS said "too many" without saying for how long. */
  defaultWaitMs: number;
  /** A parked record's first wait at least; doubled per earlier deferral hop, up to maxParkMs. */
  minParkMs: number;
  maxParkMs: number;
}

export const DEFERRAL_DEFAULTS: DeferralOptions = {
  inProcessMaxWaitMs: 5_000,
  maxWaitingPerIntegration: 16,
  maxRoundsInProcess: 5,
  spreadRatio: 0.5,
  minSpreadMs: 500,
  defaultWaitMs: 1_000,
  minParkMs: 2_000,
  maxParkMs: 300_000,
};

/**
 * Each integration's next free parking slot: parked records of one integration come due `paceMs`
 * apart, after whatever their own wait says. In memory, per process: an estimate, not a promise.
 */
export class ParkingQueue {
  private readonly next = new Map<string, number>();

  slot(integrationId: string, earliest: number, paceMs: number, now: number): number {
    const prev = this.next.get(integrationId);
    const at = Math.max(earliest, prev !== undefined && prev > now ? prev : earliest);
    this.next.set(integrationId, at + paceMs);
    if (this.next.size > 10_000) for (const [k, v] of this.next) if (v <= now) this.next.delete(k);
    return at;
  }
}

/** How long a record parked for the `hops`-th time waits: what the ATS asked, or the backoff if longer. */
export function parkedWaitMs(waitMs: number, hops: number, opts: Pick<DeferralOptions, 'minParkMs' | 'maxParkMs'>): number {
  const backoff = Math.min(opts.maxParkMs, opts.minParkMs * 2 ** Math.min(30, Math.max(0, hops)));
  return Math.max(waitMs, backoff);
}

/** When a deferred record may run again: after `waitMs`, never before, spread over a window after it. */
export function deferredDueAt(waitMs: number, now: number, random: () => number, opts: Pick<DeferralOptions, 'spreadRatio' | 'minSpreadMs'>): number {
  const wait = Math.max(0, Math.ceil(waitMs));
  return now + wait + Math.floor(random() * Math.max(opts.minSpreadMs, wait * opts.spreadRatio));
}

/**
 * The tier a parked record waits on: the shortest whose delay covers the wait (so it does not sit at
 * the head of a tier whose other records are due sooner), else the longest.
 */
export function parkingTier(tiers: RetryTier[], waitMs: number): RetryTier {
  if (tiers.length === 0) throw new Error('no retry tier to park a deferred record on');
  return tiers.find((t) => t.delayMs >= waitMs) ?? tiers.reduce((a, b) => (b.delayMs > a.delayMs ? b : a));
}
