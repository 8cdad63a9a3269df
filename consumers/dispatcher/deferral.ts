/**
 * Throttling is not failure. When an integration must wait (its ATS answered 429 or its window is
 * used up, our limiter has no slot yet, or another process is delivering the same application) the
 * record is deferred, never failed: no try is used and it never reaches the DLQ for it.
 *
 *   short wait, few of this integration's records already waiting here → wait in process, no slot held
 *   longer wait, or many waiting (a burst)                              → park it on a tier (deferral hop)
 *
 * Parking keeps the partition moving for every other integration on it: a burst of one customer is
 * not held in memory, where it would fill the partition's buffer and stop its fetching.
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
}

export const DEFERRAL_DEFAULTS: DeferralOptions = {
  inProcessMaxWaitMs: 5_000,
  maxWaitingPerIntegration: 16,
  maxRoundsInProcess: 5,
  spreadRatio: 0.5,
  minSpreadMs: 500,
  defaultWaitMs: 1_000,
};

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
