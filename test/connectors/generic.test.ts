import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBody } from '../../connectors/generic.ts';
import { application, fixture, startHarness, type Harness } from './support.ts';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

describe('generic REST', () => {
  it('posts the mapped JSON body, signed with X-ATS-Relay-Signature, with the resume inlined on request', async () => {
    const f = fixture(h, 'generic', {
      settings: {
        fieldMapping: {
          'applicant.email': 'candidate.email',
          'applicant.name.first': 'candidate.firstName',
          'job.ref': 'atsJobId',
          'cv.base64': 'resume.contentBase64',
          'cv.name': 'resume.fileName',
          'links.0': 'candidate.links.0.url',
        },
      },
      spec: { generic: { authStyle: 'bearer', requiredFields: ['applicant.email', 'cv.base64'] } },
    });
    const app = f.app();
    const result = await h.connectors.deliver(app, f.integration);

    expect(result.deduplicated).toBe(false);
    const [received] = h.sandbox.applications('generic', f.tenant);
    expect(received).toMatchObject({ id: result.externalApplicationId, idempotencyKey: app.applicationId, path: '/applications' });
    const body = received!.body as { cv: { base64: string } };
    expect(body).toEqual({
      applicant: { email: app.candidate.email, name: { first: 'Ada' } },
      job: { ref: f.jobId },
      cv: { base64: expect.any(String), name: 'ada-cv.pdf' },
      links: ['https://www.linkedin.com/in/ada'],
    });
    expect(Buffer.from(body.cv.base64, 'base64').length).toBe(h.resume.sizeBytes);
  });

  it('a second delivery is answered from the receiver\'s Idempotency-Key record', async () => {
    const f = fixture(h, 'generic');
    const app = f.app();
    const first = await h.connectors.deliver(app, f.integration);
    const second = await h.connectors.deliver(app, f.integration);
    expect(second).toEqual({ ...first, deduplicated: true });
    expect(h.sandbox.applications('generic', f.tenant)).toHaveLength(1);
  });

  it('the signature is an HMAC-SHA256 of the exact body the receiver can recompute', () => {
    const app = application();
    const body = JSON.stringify(buildBody(app, { email: 'candidate.email' }));
    const expected = `sha256=${createHmac('sha256', 'k').update(body).digest('hex')}`;
    expect(expected).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(body).toBe(JSON.stringify({ email: app.candidate.email }));
  });

  it('header API key and basic auth styles', async () => {
    const keyed = fixture(h, 'generic', {
      settings: { authStyle: 'header', headerName: 'X-Receiver-Key' },
      spec: { credentials: { apiKey: 'rk-12345', signingSecret: 's1-secret' }, generic: { authStyle: 'header', headerName: 'X-Receiver-Key' } },
      integration: { credentials: { apiKey: 'rk-12345', signingSecret: 's1-secret' } },
    });
    await expect(h.connectors.deliver(keyed.app(), keyed.integration)).resolves.toMatchObject({ deduplicated: false });
    const basic = fixture(h, 'generic', {
      settings: { authStyle: 'basic' },
      spec: { credentials: { username: 'relay', password: 'pw-123456', signingSecret: 's2-secret' }, generic: { authStyle: 'basic' } },
      integration: { credentials: { username: 'relay', password: 'pw-123456', signingSecret: 's2-secret' } },
    });
    await expect(h.connectors.deliver(basic.app(), basic.integration)).resolves.toMatchObject({ deduplicated: false });
  });
});
