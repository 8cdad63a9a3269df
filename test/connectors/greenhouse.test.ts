import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AtsError } from '../../connectors/index.ts';
import { fixture, startHarness, type Harness } from './support.ts';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

describe('greenhouse harvest v1', () => {
  it('creates candidate + application with the resume as base64 content, On-Behalf-Of and Basic auth', async () => {
    const f = fixture(h, 'greenhouse', { settings: { apiVersion: 'v1' } });
    const result = await h.connectors.deliver(f.app(), f.integration);

    expect(result.deduplicated).toBe(false);
    const [candidate] = h.sandbox.candidates('greenhouse', f.tenant);
    expect(String(candidate!.id)).toBe(result.externalCandidateId);
    expect(candidate!.first_name).toBe('Ada');
    const [app] = h.sandbox.applications('greenhouse', f.tenant);
    expect(String(app!.id)).toBe(result.externalApplicationId);
    expect(app!.job_id).toBe(101);
    expect(app!.source_id).toBe(7);
    const [att] = h.sandbox.attachments('greenhouse', f.tenant);
    expect(att).toMatchObject({ type: 'resume', contentType: 'application/pdf', sha256: h.resume.sha256 });
  });

  it('a second delivery of the same application creates nothing new', async () => {
    const f = fixture(h, 'greenhouse', { settings: { apiVersion: 'v1' } });
    const app = f.app();
    const first = await h.connectors.deliver(app, f.integration);
    const second = await h.connectors.deliver(app, f.integration);
    expect(second).toEqual({ ...first, deduplicated: true, resumeOmitted: undefined });
    expect(h.sandbox.candidates('greenhouse', f.tenant)).toHaveLength(1);
    expect(h.sandbox.applications('greenhouse', f.tenant)).toHaveLength(1);
  });

  it('an existing candidate applying to another job gets the application added', async () => {
    const f = fixture(h, 'greenhouse', { settings: { apiVersion: 'v1' } });
    const first = await h.connectors.deliver(f.app(), f.integration);
    const email = h.sandbox.candidates('greenhouse', f.tenant)[0]!.email_addresses as Array<{ value: string }>;
    const other = await h.connectors.deliver(
      f.app({ atsJobId: '102', candidate: { ...f.app().candidate, email: email[0]!.value } }),
      f.integration,
    );
    expect(other.externalCandidateId).toBe(first.externalCandidateId);
    expect(other.externalApplicationId).not.toBe(first.externalApplicationId);
    expect(h.sandbox.candidates('greenhouse', f.tenant)).toHaveLength(1);
    expect(h.sandbox.applications('greenhouse', f.tenant)).toHaveLength(2);
  });
});

describe('greenhouse harvest v3', () => {
  it('gets a client-credentials token once, then creates candidate, application and attachment', async () => {
    const f = fixture(h, 'greenhouse');
    const before = h.sandbox.state.tokens.size;
    const result = await h.connectors.deliver(f.app(), f.integration);
    await h.connectors.deliver(f.app(), f.integration);
    expect(h.sandbox.state.tokens.size - before).toBe(1);

    expect(result.deduplicated).toBe(false);
    const apps = h.sandbox.applications('greenhouse', f.tenant);
    expect(apps.map((a) => String(a.id))).toContain(result.externalApplicationId);
    const atts = h.sandbox.attachments('greenhouse', f.tenant);
    expect(atts.find((a) => String(a.application_id) === result.externalApplicationId)).toMatchObject({ type: 'resume', sha256: h.resume.sha256 });
  });

  it('resumes at the attachment step when the upload failed, then dedupes', async () => {
    const f = fixture(h, 'greenhouse');
    const app = f.app();
    h.sandbox.addFault({ kind: 'error', status: 500, tenant: f.tenant, path: '/v3/attachments', method: 'POST', times: 1 });
    await expect(h.connectors.deliver(app, f.integration)).rejects.toMatchObject({ code: 'unavailable', retriable: true, status: 500 });
    expect(h.sandbox.applications('greenhouse', f.tenant)).toHaveLength(1);
    expect(h.sandbox.attachments('greenhouse', f.tenant)).toHaveLength(0);

    const retry = await h.connectors.deliver(app, f.integration);
    expect(retry.deduplicated).toBe(false);
    expect(h.sandbox.candidates('greenhouse', f.tenant)).toHaveLength(1);
    expect(h.sandbox.applications('greenhouse', f.tenant)).toHaveLength(1);
    expect(h.sandbox.attachments('greenhouse', f.tenant)).toHaveLength(1);

    const again = await h.connectors.deliver(app, f.integration);
    expect(again).toMatchObject({ deduplicated: true, externalApplicationId: retry.externalApplicationId });
    expect(h.sandbox.attachments('greenhouse', f.tenant)).toHaveLength(1);
  });

  it('v3: an application the ATS already has is never failed because the attachments lookup failed', async () => {
    const f = fixture(h, 'greenhouse');
    const app = f.app();
    // A first attempt created candidate and application; the attachment upload's answer was lost.
    h.sandbox.addFault({ kind: 'error', status: 500, tenant: f.tenant, path: '/v3/attachments', method: 'POST', times: 1 });
    await expect(h.connectors.deliver(app, f.integration)).rejects.toMatchObject({ code: 'unavailable' });
    // The retry's lookup answers 404 (and then 502): the delivery still completes, with the resume attached.
    for (const status of [404, 502]) {
      h.sandbox.addFault({ kind: 'respond', status, tenant: f.tenant, path: '/v3/attachments', method: 'GET', body: { message: 'Not Found' }, times: 1 });
    }
    const retry = await h.connectors.deliver(app, f.integration);
    expect(retry.externalApplicationId).toBe(String(h.sandbox.applications('greenhouse', f.tenant)[0]!.id));
    expect(h.sandbox.applications('greenhouse', f.tenant)).toHaveLength(1);
    expect(h.sandbox.attachments('greenhouse', f.tenant).filter((a) => a.type === 'resume')).toHaveLength(1);
    const again = await h.connectors.deliver(app, f.integration);
    expect(again).toMatchObject({ deduplicated: false, externalApplicationId: retry.externalApplicationId });
    // A lookup that fails again attaches again; Greenhouse keeps one resume (the previous one becomes "other").
    expect(h.sandbox.attachments('greenhouse', f.tenant).filter((a) => a.type === 'resume')).toHaveLength(1);
  });

  it('wrong client secret is auth_failed, not retriable', async () => {
    const f = fixture(h, 'greenhouse');
    const err = await h.connectors
      .deliver(f.app(), { ...f.integration, credentials: { ...f.integration.credentials, clientSecret: 'nope-nope' } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AtsError);
    expect(err).toMatchObject({ code: 'auth_failed', retriable: false, status: 401 });
  });
  it('two deliveries of one application racing end with one application (v3 and v1)', async () => {
    for (const apiVersion of ['v3', 'v1'] as const) {
      const f = fixture(h, 'greenhouse', { settings: { apiVersion } });
      // The candidate exists (an application to job 102), so both deliveries add one to it.
      const first = f.app({ atsJobId: '102' });
      await h.connectors.deliver(first, f.integration);
      const app = f.app({ candidate: first.candidate });
      const create = apiVersion === 'v3' ? '/v3/applications' : '/applications';
      h.sandbox.addFault({ kind: 'latency', ms: 300, tenant: f.tenant, method: 'POST', path: create, times: 1 });
      const [a, b] = await Promise.all([h.connectors.deliver(app, f.integration), h.connectors.deliver(app, f.integration)]);
      expect(a.externalApplicationId, apiVersion).toBe(b.externalApplicationId);
      expect(h.sandbox.candidates('greenhouse', f.tenant), apiVersion).toHaveLength(1);
      expect(h.sandbox.applications('greenhouse', f.tenant), apiVersion).toHaveLength(2);
    }
  });
});
