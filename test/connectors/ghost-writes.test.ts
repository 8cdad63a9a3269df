/**
 * Ambiguous outcomes, every vendor, every write: the ATS commits the write and the answer is lost
 * (a 500 after the commit, or the connection reset). The delivery fails retriably; the retry's
 * search finds what the write created, so the ATS ends with exactly one candidate, one
 * application and the resume attached once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Platform } from '../../registry/integration.ts';
import { fixture, startHarness, type Harness } from './support.ts';

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
}

const WRITES: Case[] = [
  { platform: 'greenhouse', step: 'v1 candidates.create (candidate + application + resume)', path: '/v1/candidates', settings: { apiVersion: 'v1' } },
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
      return 1; // the body carries no file; the Idempotency-Key keeps the one record
  }
}

describe.each([
  { answer: '500 after the commit', status: 500 },
  { answer: 'reset after the commit', status: 0 },
])('$answer', ({ status }) => {
  it.each(WRITES)('$platform $step: one candidate, one application, the resume once', async ({ platform, path, settings }) => {
    const f = fixture(h, platform, settings ? { settings: settings as never } : {});
    const app = f.app();
    h.sandbox.addFault({ kind: 'ghost', status, platform, tenant: f.tenant, method: 'POST', path, times: 1 });
    await expect(h.connectors.deliver(app, f.integration)).rejects.toMatchObject({ retriable: true });

    const retry = await h.connectors.deliver(app, f.integration);
    expect(h.sandbox.candidates(platform, f.tenant)).toHaveLength(1);
    expect(h.sandbox.applications(platform, f.tenant)).toHaveLength(1);
    expect(resumesAttached(platform, f.tenant)).toBe(1);
    expect(String(h.sandbox.applications(platform, f.tenant)[0]!.id)).toBe(retry.externalApplicationId);

    // And a third delivery (a replay, a redrive) finds everything and writes nothing.
    const again = await h.connectors.deliver(app, f.integration);
    expect(again).toMatchObject({ externalApplicationId: retry.externalApplicationId, deduplicated: true });
    expect(h.sandbox.candidates(platform, f.tenant)).toHaveLength(1);
    expect(resumesAttached(platform, f.tenant)).toBe(1);
  });
});
