import { describe, expect, it } from 'vitest';
import { AtsError } from '../../connectors/ats-error.ts';
import { RateLimiter, retryAfterMsFrom } from '../../connectors/rate-limit.ts';

const now = Date.UTC(2026, 0, 1, 12, 0, 0);

describe('rate-limit headers → retryAfterMs', () => {
  it.each([
    ['Retry-After seconds', { 'retry-after': '7' }, 429, 7_000],
    ['Retry-After HTTP date', { 'retry-after': new Date(now + 3_000).toUTCString() }, 429, 3_000],
    ['Greenhouse X-RateLimit-Reset (epoch seconds) on 429', { 'x-ratelimit-reset': String(now / 1000 + 4) }, 429, 4_000],
    ['Workable X-Rate-Limit-Reset when the window is used up', { 'x-rate-limit-remaining': '0', 'x-rate-limit-reset': String(now / 1000 + 9) }, 200, 9_000],
    ['reset as epoch milliseconds', { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(now + 1_500) }, 200, 1_500],
    ['reset as seconds from now', { 'x-ratelimit-reset': '2' }, 429, 2_000],
    ['window not used up: nothing to wait for', { 'x-rate-limit-remaining': '3', 'x-rate-limit-reset': String(now / 1000 + 9) }, 200, undefined],
    ['no headers', {}, 429, undefined],
  ])('%s', (_name, headers, status, expected) => {
    expect(retryAfterMsFrom(headers, status, now)).toBe(expected);
  });
});

describe('token bucket', () => {
  it('lets a burst through, then spaces requests at the refill rate', async () => {
    const limiter = new RateLimiter();
    const spec = { capacity: 2, refillPerSecond: 10 };
    const started = performance.now();
    for (let i = 0; i < 4; i++) await limiter.acquire('k', spec, { maxWaitMs: 1_000 });
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(180);
    expect(elapsed).toBeLessThan(600);
  });

  it('fails fast with rate_limited and retryAfterMs when the next slot is beyond the wait budget', async () => {
    const limiter = new RateLimiter();
    const spec = { capacity: 1, refillPerSecond: 0.1 };
    await limiter.acquire('k', spec, { maxWaitMs: 100 });
    const err = await limiter.acquire('k', spec, { maxWaitMs: 100 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AtsError);
    expect(err).toMatchObject({ code: 'rate_limited', retriable: true });
    expect((err as AtsError).retryAfterMs).toBeGreaterThan(9_000);
  });

  it('a pause from the ATS holds every request of that key, even without a bucket', async () => {
    const limiter = new RateLimiter();
    limiter.pause('k', 150);
    const started = performance.now();
    await limiter.acquire('k', null, { maxWaitMs: 1_000 });
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
    await limiter.acquire('other', null, { maxWaitMs: 1_000 });
    limiter.pause('k', 5_000);
    await expect(limiter.acquire('k', null, { maxWaitMs: 1_000 })).rejects.toMatchObject({ code: 'rate_limited' });
  });
});
