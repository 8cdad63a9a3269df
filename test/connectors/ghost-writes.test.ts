/**
 * Ambiguous outcomes, every vendor, every write: the ATS commits the write and the answer is lost
 * (a 500 after the commit, the connection reset, or the answer held past the connector's request
 * timeout). The delivery fails retriably; the retry's search finds what the write created, so the
 * ATS ends with exactly one candidate, one application and the resume attached once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Platform } from '../../registry/integration.ts';
import { startSandbox } from '../../sandbox/server.ts';
import type { FaultSpec } from '../../sandbox/state.ts';
import { fixture, startHarness, TEST_TIMEOUT_MS, type Harness } from './support.ts';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

interface Case {
  platform: Platform;
  step: string;
  path: string;
  settings?: Record<string, unknown>;
  /** The candidate already exists, with an application to another job (Greenhouse v1's add-application path). */
  existingCandidate?: boolean;
}

const WRITES: Case[] = [
  { platform: 'greenhouse', step: 'v1 candidates.create (candidate + application + resume)', path: '/v1/candidates', settings: { apiVersion: 'v1' } },
  {
    platform: 'greenhouse',
    step: 'v1 candidates.applications.create (application + resume for an existing candidate)',
    path: '/applications',
    settings: { apiVersion: 'v1' },
    existingCandidate: true,
  },
  { platform: 'greenhouse', step: 'v3 candidates.create', path: '/v3/candidates' },
  { platform: 'greenhouse', step: 'v3 applications.create', path: '/v3/applications' },
  { platform: 'greenhouse', step: 'v3 attachments.create', path: '/v3/attachments' },
  { platform: 'lever', step: 'opportunities.create', path: '/v1/opportunities' },
  { platform: 'workable', step: 'candidates.create', path: '/candidates' },
  { platform: 'ashby', step: 'candidate.create', path: 'candidate.create' },
  { platform: 'ashby', step: 'resume upload to storage', path: '/_uploads/' },
  { platform: 'ashby', step: 'candidate.uploadResume', path: 'candidate.uploadResume' },
  { platform: 'ashby', step: 'application.create', path: 'application.create' },
  { platform: 'generic', step: 'POST application', path: '/applications' },
];

/** How many times the resume is attached at the sandbox, per vendor's way of keeping it. */
function resumesAttached(platform: Platform, tenant: string): number {
  switch (platform) {
    case 'greenhouse':
      return h.sandbox.attachments('greenhouse', tenant).length;
    case 'lever':
    case 'workable':
      return h.sandbox.applications(platform, tenant).filter((a) => a.resume).length;
    case 'ashby':
      return h.sandbox.candidates('ashby', tenant).reduce((n, c) => n + Number(c.resumeUploads ?? 0), 0);
    case 'generic':
      // The event (its resume reference included) travels in the one record the Idempotency-Key keeps.
      return h.sandbox.applications('generic', tenant).filter((a) => (a.body as { resume?: unknown } | undefined)?.resume).length;
  }
}

describe.each<{ answer: string; lost: Pick<FaultSpec, 'status' | 'hangMs'>; code?: string }>([
  { answer: '500 after the commit', lost: { status: 500 } },
  { answer: 'reset after the commit', lost: { status: 0 } },
  // Held far longer than the connectors' request timeout: the connector gives up on its own clock.
  { answer: 'answer held past the request timeout', lost: { hangMs: TEST_TIMEOUT_MS * 20 }, code: 'timeout' },
])('$answer', ({ lost, code }) => {
  it.each(WRITES)('$platform $step: one candidate, one application, the resume once', async ({ platform, path, settings, existingCandidate }) => {
    const f = fixture(h, platform, settings ? { settings: settings as never } : {});
    const app = f.app();
    if (existingCandidate) {
      // Same person, another job: the search finds the candidate but no application for this job.
      await h.connectors.deliver(f.app({ atsJobId: '102', candidate: app.candidate }), f.integration);
    }
    const before = { applications: h.sandbox.applications(platform, f.tenant).length, resumes: resumesAttached(platform, f.tenant) };
    const fault = h.sandbox.addFault({ kind: 'ghost', ...lost, platform, tenant: f.tenant, method: 'POST', path, times: 1 });
    await expect(h.connectors.deliver(app, f.integration)).rejects.toMatchObject({ retriable: true, ...(code ? { code } : {}) });
    expect(fault.fired).toBe(1);

    const retry = await h.connectors.deliver(app, f.integration);
    const applications = h.sandbox.applications(platform, f.tenant);
    expect(h.sandbox.candidates(platform, f.tenant)).toHaveLength(1);
    expect(applications).toHaveLength(before.applications + 1);
    expect(resumesAttached(platform, f.tenant)).toBe(before.resumes + 1);
    expect(String(applications.at(-1)!.id)).toBe(retry.externalApplicationId);

    // And a third delivery (a replay, a redrive) finds everything and writes nothing.
    const again = await h.connectors.deliver(app, f.integration);
    expect(again).toMatchObject({ externalApplicationId: retry.externalApplicationId, deduplicated: true });
    expect(h.sandbox.candidates(platform, f.tenant)).toHaveLength(1);
    expect(h.sandbox.applications(platform, f.tenant)).toHaveLength(before.applications + 1);
    expect(resumesAttached(platform, f.tenant)).toBe(before.resumes + 1);
  });
});

it('a held answer does not keep the sandbox from closing', async () => {
  const sandbox = await startSandbox({ port: 0 });
  sandbox.addTenant({ platform: 'generic', tenant: 'held', credentials: {}, generic: { authStyle: 'none' } });
  sandbox.addFault({ kind: 'ghost', hangMs: 60_000, platform: 'generic', method: 'POST' });
  // A client with no timeout of its own: only the sandbox can end this request.
  const pending = fetch(sandbox.urlFor('generic', 'held'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }).then(
    () => 'answered',
    () => 'dropped',
  );
  await expect.poll(() => sandbox.applications('generic', 'held').length).toBe(1);
  const started = Date.now();
  await sandbox.close();
  expect(Date.now() - started).toBeLessThan(2_000);
  expect(await pending).toBe('dropped');
});
