/**
 * The dispatcher's decision pieces in isolation: the watermark, the retry ladder, the breaker and
 * the header contract. No services needed.
 */
import { describe, expect, it } from 'vitest';
import { CircuitBreakers } from '../../consumers/dispatcher/circuit-breaker.ts';
import { OffsetTracker } from '../../consumers/runtime/offset-tracker.ts';
import { createRetryRouter } from '../../consumers/dispatcher/retry-router.ts';
import { loadConfig } from '../../lib/config.ts';
import { deferredDueAt, parkedWaitMs, ParkingQueue, parkingTier } from '../../consumers/dispatcher/deferral.ts';
import { clipUtf8, deferralHeaders, failureHeaders, HEADER } from '../../lib/headers.ts';

describe('OffsetTracker', () => {
  it('commits only the contiguous watermark of finished offsets', () => {
    const t = new OffsetTracker();
    for (const o of [10, 11, 12, 13]) t.accept(o);
    expect(t.committable()).toBe(10);
    t.complete(12);
    t.complete(11);
    expect(t.committable()).toBe(10); // 10 still running
    t.complete(10);
    expect(t.committable()).toBe(13);
    t.committed = 13;
    expect(t.committable()).toBeUndefined();
    t.complete(13);
    expect(t.committable()).toBe(14);
    expect(t.inFlight).toBe(0);
  });

  it('refuses an offset twice', () => {
    const t = new OffsetTracker();
    t.accept(5);
    expect(() => t.accept(5)).toThrow();
  });
});

describe('retry router', () => {
  const { retryTiers } = loadConfig({}).topics;
  const now = 1_000_000;

  it('walks the ladder by try count, then the DLQ', () => {
    const route = createRetryRouter({ tiers: retryTiers, jitter: 0, now: () => now });
    expect(route({ retriable: true, tryCount: 0 })).toMatchObject({ kind: 'retry', tier: { name: 'retry-30s' }, tryCount: 1, dueAt: now + 30_000 });
    expect(route({ retriable: true, tryCount: 1 })).toMatchObject({ kind: 'retry', tier: { name: 'retry-2m' }, tryCount: 2 });
    expect(route({ retriable: true, tryCount: 2 })).toMatchObject({ kind: 'retry', tier: { name: 'retry-5m' }, tryCount: 3 });
    expect(route({ retriable: true, tryCount: 3 })).toEqual({ kind: 'dlq', tryCount: 4, reason: 'retries_exhausted' });
    expect(route({ retriable: false, tryCount: 0 })).toEqual({ kind: 'dlq', tryCount: 1, reason: 'non_retriable' });
  });

  it('randomizes within ±jitter and never comes back before Retry-After', () => {
    const low = createRetryRouter({ tiers: retryTiers, jitter: 0.2, random: () => 0, now: () => now });
    const high = createRetryRouter({ tiers: retryTiers, jitter: 0.2, random: () => 0.999999, now: () => now });
    expect(low({ retriable: true, tryCount: 0 })).toMatchObject({ dueAt: now + 24_000 });
    expect((high({ retriable: true, tryCount: 0 }) as { dueAt: number }).dueAt).toBeLessThanOrEqual(now + 36_000);
    expect(low({ retriable: true, tryCount: 0, retryAfterMs: 90_000 })).toMatchObject({ dueAt: now + 90_000 });
  });
});

describe('circuit breaker', () => {
  it('opens after N retriable failures, probes once half-open, closes on success', () => {
    let t = 0;
    const b = new CircuitBreakers({ failureThreshold: 3, openMs: 1_000, now: () => t });
    for (let i = 0; i < 3; i++) b.onFailure('i1', true);
    expect(b.admit('i1')).toMatchObject({ allowed: false, reason: 'circuit_open' });
    expect(b.admit('i2')).toEqual({ allowed: true }); // one integration's trouble is its own
    t = 1_001;
    expect(b.admit('i1')).toEqual({ allowed: true }); // the probe
    expect(b.admit('i1')).toMatchObject({ allowed: false }); // only one at a time
    b.onSuccess('i1');
    expect(b.admit('i1')).toEqual({ allowed: true });
  });

  it('ignores non-retriable failures and cools down after a 429', () => {
    let t = 0;
    const b = new CircuitBreakers({ failureThreshold: 1, openMs: 1_000, now: () => t });
    b.onFailure('i1', false);
    expect(b.admit('i1')).toEqual({ allowed: true });
    b.onSuccess('i1');
    b.onFailure('i2', true, 5_000);
    t = 4_000;
    expect(b.admit('i2')).toMatchObject({ allowed: false, reason: 'rate_limited', untilMs: 5_000 });
  });
});

describe('throttling is not failure', () => {
  it('a 429 cools the integration down but never opens its circuit', () => {
    let t = 0;
    const b = new CircuitBreakers({ failureThreshold: 2, openMs: 60_000, now: () => t });
    for (let i = 0; i < 10; i++) b.onThrottled('i1', 1_000);
    expect(b.state('i1')).toBe('closed');
    expect(b.admit('i1')).toMatchObject({ allowed: false, reason: 'rate_limited', untilMs: 1_000 });
    t = 1_000;
    expect(b.admit('i1')).toEqual({ allowed: true });
  });

  it('a half-open probe that was not used (the application was leased elsewhere) is free again', () => {
    let t = 0;
    const b = new CircuitBreakers({ failureThreshold: 1, openMs: 1_000, now: () => t });
    b.onFailure('i1', true);
    t = 1_001;
    expect(b.admit('i1')).toEqual({ allowed: true });
    b.abandon('i1');
    expect(b.admit('i1')).toEqual({ allowed: true });
  });

  it('deferred due times are never before the reset and spread after it', () => {
    const opts = { spreadRatio: 0.5, minSpreadMs: 500 };
    expect(deferredDueAt(4_000, 1_000, () => 0, opts)).toBe(5_000);
    expect(deferredDueAt(4_000, 1_000, () => 0.999, opts)).toBe(5_000 + 1_998);
    const dues = Array.from({ length: 200 }, (_, i) => deferredDueAt(2_000, 0, () => i / 200, opts));
    expect(Math.min(...dues)).toBe(2_000);
    expect(new Set(dues).size).toBeGreaterThan(150); // not one thundering millisecond
  });

  it('a record parked again waits twice as long each time, up to a cap, never less than the ATS asked', () => {
    const opts = { minParkMs: 2_000, maxParkMs: 300_000 };
    expect([0, 1, 2, 3].map((hops) => parkedWaitMs(500, hops, opts))).toEqual([2_000, 4_000, 8_000, 16_000]);
    expect(parkedWaitMs(500, 40, opts)).toBe(300_000);
    expect(parkedWaitMs(60_000, 0, opts)).toBe(60_000);
  });

  it("parked records of one integration come due at its budget's pace, never before their own wait", () => {
    const q = new ParkingQueue();
    expect([0, 1, 2].map(() => q.slot('i1', 5_000, 300, 0))).toEqual([5_000, 5_300, 5_600]);
    expect(q.slot('i1', 9_000, 300, 0)).toBe(9_000); // its own wait is later than the queue
    expect(q.slot('i2', 5_000, 300, 0)).toBe(5_000); // another integration has its own queue
    expect(q.slot('i1', 1_000, 300, 20_000)).toBe(1_000); // the queue has drained
  });

  it('parks on the shortest tier covering the wait, else the longest', () => {
    const { retryTiers } = loadConfig({}).topics;
    expect(parkingTier(retryTiers, 5_000).name).toBe('retry-30s');
    expect(parkingTier(retryTiers, 90_000).name).toBe('retry-2m');
    expect(parkingTier(retryTiers, 3_600_000).name).toBe('retry-5m');
  });

  it('a deferral hop keeps the try count and says why it happened; a later failure hop clears the mark', () => {
    const source = { topic: 'ats.applications.retry-30s', partition: 1, offset: '7', timestamp: '1', headers: { [HEADER.tryCount]: '1', [HEADER.originalTopic]: 'ats.applications' } };
    const h = deferralHeaders(source, { reason: 'rate_limited', dueAt: 99, failedBy: 'g' });
    expect(h).toMatchObject({ [HEADER.tryCount]: '1', [HEADER.dueAt]: '99', [HEADER.deferredFor]: 'rate_limited', [HEADER.deferralCount]: '1', [HEADER.originalTopic]: 'ats.applications' });
    expect(deferralHeaders({ ...source, headers: h }, { reason: 'lease_held', dueAt: 100, failedBy: 'g' })[HEADER.deferralCount]).toBe('2');
    const failed = failureHeaders({ ...source, headers: h }, { code: 'unavailable', message: 'x', status: 503 }, { tryCount: 2, dueAt: 5, failedBy: 'g', now: 1 });
    expect(failed[HEADER.deferredFor]).toBeUndefined();
    expect(failed[HEADER.tryCount]).toBe('2');
  });
});

describe('header contract', () => {
  const source = { topic: 'ats.applications', partition: 3, offset: '42', timestamp: '1700000000000', headers: { 'x-trace': 'abc' } };

  it('keeps the first failure\'s coordinates and only the latest error', () => {
    const first = failureHeaders(source, { code: 'unavailable', message: 'boom', status: 503 }, { tryCount: 1, dueAt: 5, failedBy: 'g1', now: 1 });
    const second = failureHeaders(
      { topic: 'ats.applications.retry-30s', partition: 0, offset: '7', timestamp: '1', headers: first },
      { code: 'timeout', message: 'slow', status: undefined },
      { tryCount: 2, failedBy: 'g2', now: 9 },
    );
    expect(second).toMatchObject({
      'x-trace': 'abc',
      [HEADER.originalTopic]: 'ats.applications',
      [HEADER.originalPartition]: '3',
      [HEADER.originalOffset]: '42',
      [HEADER.firstFailureAt]: '1',
      [HEADER.tryCount]: '2',
      [HEADER.errorCode]: 'timeout',
      [HEADER.failedBy]: 'g2',
    });
    expect(second[HEADER.errorStatus]).toBeUndefined();
    expect(second[HEADER.dueAt]).toBeUndefined();
    expect(Object.keys(second)).toHaveLength(Object.keys(first).length - 2);
  });

  it('clips error messages to 1 KB without splitting a character', () => {
    const clipped = clipUtf8('é'.repeat(2_000));
    expect(Buffer.byteLength(clipped)).toBeLessThanOrEqual(1_024);
    expect(clipped).not.toContain('\uFFFD');
  });
});
