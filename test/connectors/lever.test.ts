import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, startHarness, type Harness } from './support.ts';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

describe('lever', () => {
  it('creates an opportunity as multipart with resumeFile and postings[], performed as the configured user', async () => {
    const f = fixture(h, 'lever');
    const result = await h.connectors.deliver(f.app(), f.integration);

    expect(result.deduplicated).toBe(false);
    const [opp] = h.sandbox.applications('lever', f.tenant);
    expect(opp).toMatchObject({
      id: result.externalApplicationId,
      contact: result.externalCandidateId,
      name: 'Ada Byron',
      postings: [f.jobId],
      origin: 'applied',
      sources: ['AcmeJobs'],
      owner: f.integration.settings.performAs,
      resume: { fileName: 'ada-cv.pdf', contentType: 'application/pdf', sha256: h.resume.sha256 },
    });
  });

  it('a second delivery of the same application creates nothing new', async () => {
    const f = fixture(h, 'lever');
    const app = f.app();
    const first = await h.connectors.deliver(app, f.integration);
    const second = await h.connectors.deliver(app, f.integration);
    expect(second).toEqual({ externalCandidateId: first.externalCandidateId, externalApplicationId: first.externalApplicationId, deduplicated: true });
    expect(h.sandbox.applications('lever', f.tenant)).toHaveLength(1);
  });

  it('the same person applying to another posting joins the existing contact', async () => {
    const f = fixture(h, 'lever');
    const first = await h.connectors.deliver(f.app(), f.integration);
    const email = (h.sandbox.applications('lever', f.tenant)[0]!.emails as string[])[0]!;
    const other = await h.connectors.deliver(
      f.app({ atsJobId: '0b7a2c43-2f5f-4b52-9d2e-8a0c6e1b1d11', candidate: { ...f.app().candidate, email } }),
      f.integration,
    );
    expect(other.externalCandidateId).toBe(first.externalCandidateId);
    expect(h.sandbox.candidates('lever', f.tenant)).toHaveLength(1);
    expect(h.sandbox.applications('lever', f.tenant)).toHaveLength(2);
  });
});
