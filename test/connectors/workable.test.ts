import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, startHarness, type Harness } from './support.ts';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

describe('workable', () => {
  it('creates an applied (sourced: false) candidate in the job on the account subdomain, resume inline', async () => {
    const f = fixture(h, 'workable');
    const result = await h.connectors.deliver(f.app(), f.integration);

    expect(result).toMatchObject({ deduplicated: false });
    expect(result.externalApplicationId).toBe(result.externalCandidateId);
    const [candidate] = h.sandbox.candidates('workable', f.tenant);
    expect(candidate).toMatchObject({
      id: result.externalCandidateId,
      name: 'Ada Byron',
      sourced: false,
      stage: 'applied',
      shortcode: f.jobId,
      resume: { fileName: 'ada-cv.pdf', sha256: h.resume.sha256 },
    });
  });

  it('a second delivery of the same application creates nothing new', async () => {
    const f = fixture(h, 'workable');
    const app = f.app();
    const first = await h.connectors.deliver(app, f.integration);
    const second = await h.connectors.deliver(app, f.integration);
    expect(second).toEqual({ externalCandidateId: first.externalCandidateId, externalApplicationId: first.externalApplicationId, deduplicated: true });
    expect(h.sandbox.candidates('workable', f.tenant)).toHaveLength(1);
  });

  it('partner tokens send X-WORKABLE-CLIENT-ID', async () => {
    const f = fixture(h, 'workable', { spec: { credentials: { token: 'partner-token-1', clientId: 'partner-uid-1' } } });
    const integration = { ...f.integration, credentials: { token: 'partner-token-1', clientId: 'partner-uid-1' } };
    await expect(h.connectors.deliver(f.app(), integration)).resolves.toMatchObject({ deduplicated: false });
    await expect(h.connectors.deliver(f.app(), { ...integration, credentials: { token: 'partner-token-1' } })).rejects.toMatchObject({ code: 'auth_failed' });
  });

  it('the connector reads X-Rate-Limit-* and waits for the window instead of running into 429', async () => {
    const own = await startHarness({ rateLimits: { workable: { capacity: 5, refillPerSecond: 5 } }, rateLimitMaxWaitMs: 10_000 });
    try {
      const f = fixture(own, 'workable', { spec: { rateLimit: { limit: 5, windowMs: 1_000 } } });
      // 6 deliveries = 12 requests against 5 per 1-second window.
      const results = await Promise.all([0, 1, 2, 3, 4, 5].map(() => own.connectors.deliver(f.app(), f.integration)));
      expect(results.every((r) => !r.deduplicated)).toBe(true);
      expect(own.sandbox.candidates('workable', f.tenant)).toHaveLength(6);
      expect(own.sandbox.state.stats.byStatus['429']).toBeUndefined();
    } finally {
      await own.close();
    }
  });
});
