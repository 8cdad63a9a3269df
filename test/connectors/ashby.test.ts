import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, startHarness, type Harness } from './support.ts';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

describe('ashby', () => {
  it('search → candidate.create → resume upload handle → application.create', async () => {
    const f = fixture(h, 'ashby', { settings: { sourceId: 'src-1' } });
    const result = await h.connectors.deliver(f.app(), f.integration);

    expect(result.deduplicated).toBe(false);
    const [candidate] = h.sandbox.candidates('ashby', f.tenant);
    expect(candidate).toMatchObject({
      id: result.externalCandidateId,
      name: 'Ada Byron',
      linkedInUrl: 'https://www.linkedin.com/in/ada',
      resumeFileHandle: { name: 'ada-cv.pdf', sha256: h.resume.sha256 },
    });
    const [app] = h.sandbox.applications('ashby', f.tenant);
    expect(app).toMatchObject({ id: result.externalApplicationId, jobId: f.jobId, candidateId: candidate!.id, sourceId: 'src-1' });
  });

  it('a second delivery of the same application creates nothing new', async () => {
    const f = fixture(h, 'ashby');
    const app = f.app();
    const first = await h.connectors.deliver(app, f.integration);
    const second = await h.connectors.deliver(app, f.integration);
    expect(second).toEqual({ externalCandidateId: first.externalCandidateId, externalApplicationId: first.externalApplicationId, deduplicated: true });
    expect(h.sandbox.candidates('ashby', f.tenant)).toHaveLength(1);
    expect(h.sandbox.applications('ashby', f.tenant)).toHaveLength(1);
  });

  it('resumes from the failed step: a retry after application.create failed reuses candidate and resume', async () => {
    const f = fixture(h, 'ashby');
    const app = f.app();
    h.sandbox.addFault({ kind: 'error', status: 502, tenant: f.tenant, path: 'application.create', times: 1 });
    await expect(h.connectors.deliver(app, f.integration)).rejects.toMatchObject({ code: 'unavailable', retriable: true });
    expect(h.sandbox.candidates('ashby', f.tenant)).toHaveLength(1);
    expect(h.sandbox.applications('ashby', f.tenant)).toHaveLength(0);

    const uploadsBefore = h.sandbox.state.stats.byPlatform.ashby ?? 0;
    const retry = await h.connectors.deliver(app, f.integration);
    expect(retry.deduplicated).toBe(false);
    expect(h.sandbox.candidates('ashby', f.tenant)).toHaveLength(1);
    expect(h.sandbox.applications('ashby', f.tenant)).toHaveLength(1);
    // search + application.create only: no second candidate, no second resume upload.
    expect((h.sandbox.state.stats.byPlatform.ashby ?? 0) - uploadsBefore).toBe(2);
  });
  it('two deliveries of one application racing (a rebalance overlap) end with one application, both told it', async () => {
    const f = fixture(h, 'ashby');
    const app = f.app();
    // An earlier attempt left the candidate without the application.
    h.sandbox.addFault({ kind: 'error', status: 502, tenant: f.tenant, path: 'application.create', times: 1 });
    await expect(h.connectors.deliver(app, f.integration)).rejects.toMatchObject({ code: 'unavailable' });
    // Both look and find no application; the first create is held back, so the other one's lands first.
    h.sandbox.addFault({ kind: 'latency', ms: 300, tenant: f.tenant, path: 'application.create', times: 1 });
    const [a, b] = await Promise.all([h.connectors.deliver(app, f.integration), h.connectors.deliver(app, f.integration)]);
    expect(h.sandbox.candidates('ashby', f.tenant)).toHaveLength(1);
    expect(h.sandbox.applications('ashby', f.tenant)).toHaveLength(1);
    expect(a.externalApplicationId).toBe(b.externalApplicationId);
    expect([a.deduplicated, b.deduplicated].sort()).toEqual([false, true]);
  });

  it('an unknown job is refused with job_not_found before anything is written', async () => {
    const f = fixture(h, 'ashby');
    const app = { ...f.app(), atsJobId: 'no-such-job' };
    await expect(h.connectors.deliver(app, f.integration)).rejects.toMatchObject({ code: 'job_not_found', retriable: false });
    expect(h.sandbox.candidates('ashby', f.tenant)).toHaveLength(0);
    expect(h.sandbox.applications('ashby', f.tenant)).toHaveLength(0);
    expect([...h.sandbox.state.uploads.values()].filter((u) => u.tenant.spec.tenant === f.tenant)).toHaveLength(0);
  });

  it('uploads the resume as Ashby documents it: multipart POST with every returned field, the file last', async () => {
    const f = fixture(h, 'ashby');
    // The sandbox's storage answers 403 to anything else (a PUT, a field missing, the file not last).
    const result = await h.connectors.deliver(f.app(), f.integration);
    const [candidate] = h.sandbox.candidates('ashby', f.tenant);
    expect(candidate).toMatchObject({ id: result.externalCandidateId, resumeFileHandle: { sha256: h.resume.sha256 } });
  });

  it('a 403 from the storage is forbidden and final', async () => {
    const f = fixture(h, 'ashby');
    h.sandbox.addFault({ kind: 'respond', status: 403, tenant: f.tenant, path: '/_uploads/', body: { message: 'Access Denied' }, times: 1 });
    await expect(h.connectors.deliver(f.app(), f.integration)).rejects.toMatchObject({ code: 'forbidden', retriable: false, status: 403 });
  });
});
