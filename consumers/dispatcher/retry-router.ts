/**
 * Where a failed delivery goes next, as a decision table:
 *   non-retriable (validation, auth, unknown job, missing integration, undecodable) → DLQ now
 *   retriable, tries left                                                          → next tier
 *   retriable, ladder exhausted                                                    → DLQ
 * and when it may run again: now + tier delay × (1 ± jitter), never before the ATS's Retry-After.
 */
import type { RetryTier } from '../../lib/config.ts';
import type { DeadLetterReason } from '../../lib/headers.ts';

export interface RouteInput {
  retriable: boolean;
  /** Failed tries before this one (0 on the main topic). */
  tryCount: number;
  retryAfterMs?: number | undefined;
}

export type Route =
  | { kind: 'retry'; tier: RetryTier; tryCount: number; dueAt: number }
  | { kind: 'dlq'; tryCount: number; reason: DeadLetterReason };

export interface RouterOptions {
  tiers: RetryTier[];
  /** 0.2 = ±20 % */
  jitter: number;
  random?: () => number;
  now?: () => number;
}

export function createRetryRouter(opts: RouterOptions): (input: RouteInput) => Route {
  const random = opts.random ?? Math.random;
  const now = opts.now ?? Date.now;
  return ({ retriable, tryCount, retryAfterMs }) => {
    const next = tryCount + 1;
    if (!retriable) return { kind: 'dlq', tryCount: next, reason: 'non_retriable' };
    const tier = opts.tiers[next - 1];
    if (!tier) return { kind: 'dlq', tryCount: next, reason: 'retries_exhausted' };
    const t = now();
    const factor = 1 + opts.jitter * (2 * random() - 1);
    const dueAt = Math.max(t + Math.round(tier.delayMs * factor), t + (retryAfterMs ?? 0));
    return { kind: 'retry', tier, tryCount: next, dueAt };
  };
}
