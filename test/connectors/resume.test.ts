import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SAMPLE_RESUME } from '../../sandbox/server.ts';
import { fixture, startHarness, type Harness } from './support.ts';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ resumeMaxBytes: 1_024 });
});
afterAll(() => h.close());

describe('resumes', () => {
  it('an application without a resume is refused (not retriable) before anything is created', async () => {
    const f = fixture(h, 'greenhouse', { settings: { apiVersion: 'v1' } });
    await expect(h.connectors.deliver(f.app({ resume: null }), f.integration)).rejects.toMatchObject({
      code: 'validation_failed',
      retriable: false,
      context: expect.objectContaining({ resume: 'absent' }),
    });
    expect(h.sandbox.candidates('greenhouse', f.tenant)).toHaveLength(0);
  });

  it('with allowMissingResume the application is delivered without it, and the result says why', async () => {
    const f = fixture(h, 'greenhouse', { settings: { apiVersion: 'v1' }, integration: { allowMissingResume: true } });
    const result = await h.connectors.deliver(f.app({ resume: null }), f.integration);
    expect(result).toMatchObject({ deduplicated: false, resumeOmitted: 'absent' });
    expect(h.sandbox.applications('greenhouse', f.tenant)).toHaveLength(1);
    expect(h.sandbox.attachments('greenhouse', f.tenant)).toHaveLength(0);
  });

  it('declared over the size cap → too_large; served bigger than declared → too_large too', async () => {
    const f = fixture(h, 'lever');
    await expect(h.connectors.deliver(f.app({ resume: { ...h.resume, sizeBytes: 5_000 } }), f.integration)).rejects.toMatchObject({
      code: 'validation_failed',
      context: expect.objectContaining({ resume: 'too_large' }),
    });
    const big = h.sandbox.addFile('big.pdf', Buffer.concat([SAMPLE_RESUME, Buffer.alloc(4_000, 0x20)]), 'application/pdf');
    await expect(h.connectors.deliver(f.app({ resume: { ...big, sizeBytes: 100 } }), f.integration)).rejects.toMatchObject({
      code: 'validation_failed',
      context: expect.objectContaining({ resume: 'too_large' }),
    });
    expect(h.sandbox.applications('lever', f.tenant)).toHaveLength(0);
  });

  it('a URL serving something that is not a document, or other bytes than the checksum → refused', async () => {
    const f = fixture(h, 'workable');
    const html = h.sandbox.addFile('cv.html', Buffer.from('<html>login</html>'), 'text/html');
    await expect(h.connectors.deliver(f.app({ resume: { ...html, contentType: 'application/pdf' } }), f.integration)).rejects.toMatchObject({
      context: expect.objectContaining({ resume: 'unsupported_type' }),
    });
    await expect(h.connectors.deliver(f.app({ resume: { ...h.resume, sha256: '0'.repeat(64) } }), f.integration)).rejects.toMatchObject({
      code: 'validation_failed',
      context: expect.objectContaining({ resume: 'checksum_mismatch' }),
    });
  });

  it('a resume URL that 404s is not_found (delivered without it when allowed); one that 503s is retriable', async () => {
    const f = fixture(h, 'ashby');
    const gone = { ...h.resume, url: `${h.sandbox.url}/_sandbox/files/gone.pdf` };
    await expect(h.connectors.deliver(f.app({ resume: gone }), f.integration)).rejects.toMatchObject({
      code: 'validation_failed',
      status: 404,
      context: expect.objectContaining({ resume: 'not_found' }),
    });
    const lenient = { ...f.integration, allowMissingResume: true };
    await expect(h.connectors.deliver(f.app({ resume: gone }), lenient)).resolves.toMatchObject({ resumeOmitted: 'not_found' });

    const g = fixture(h, 'generic', { settings: { fieldMapping: { cv: 'resume.contentBase64' } } });
    const flaky = { ...h.resume, url: `${h.sandbox.url}/_sandbox/files/flaky.pdf` };
    const down = h.sandbox.addFile('flaky.pdf', SAMPLE_RESUME, 'application/pdf');
    expect(down.sha256).toBe(h.resume.sha256);
    // Files are served by the control API, which has no faults; a 5xx comes from a vendor prefix instead.
    const viaVendor = { ...h.resume, url: `${h.sandbox.url}/generic/${g.tenant}/resume.pdf` };
    h.sandbox.addFault({ kind: 'error', status: 503, tenant: g.tenant, method: 'GET', times: 1 });
    await expect(h.connectors.deliver(g.app({ resume: viaVendor }), g.integration)).rejects.toMatchObject({ code: 'unavailable', retriable: true, status: 503 });
    await expect(h.connectors.deliver(g.app({ resume: flaky }), g.integration)).resolves.toMatchObject({ deduplicated: false, resumeOmitted: null });
  });
});
