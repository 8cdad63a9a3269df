/**
 * Every error code, produced by the vendor answer that means it (the sandbox's own strict checks
 * where they exist, otherwise a canned answer in the vendor's format), with the right retriable
 * flag, status, retryAfterMs and a vendor message free of secrets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AtsError, type AtsErrorCode } from '../../connectors/index.ts';
import { isRetriable } from '../../lib/error-codes.ts';
import type { ApplicationSubmitted } from '../../lib/application.ts';
import type { Integration, Platform } from '../../registry/integration.ts';
import { fixture, startHarness, type Fixture, type Harness } from './support.ts';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

interface Case {
  code: AtsErrorCode;
  status?: number;
  how: string;
  /** Words of the vendor's answer that must reach the error message (and so the DLQ header and digest). */
  says?: string;
  /** Arrange faults on the fixture's tenant, or return a changed integration / application. */
  arrange(f: Fixture<Platform>): { integration?: Integration; app?: ApplicationSubmitted } | void;
}

const transport = (): Case[] => [
  { code: 'rate_limited', status: 429, how: '429 + Retry-After: 2', arrange: (f) => void h.sandbox.addFault({ kind: 'rate_limit', tenant: f.tenant, retryAfterSeconds: 2, times: 1 }) },
  { code: 'unavailable', status: 503, how: '503', arrange: (f) => void h.sandbox.addFault({ kind: 'error', status: 503, tenant: f.tenant, times: 1 }) },
  { code: 'timeout', how: 'no answer before the request timeout', arrange: (f) => void h.sandbox.addFault({ kind: 'hang', tenant: f.tenant, hangMs: 5_000, times: 1 }) },
  { code: 'network', how: 'connection reset', arrange: (f) => void h.sandbox.addFault({ kind: 'reset', tenant: f.tenant, times: 1 }) },
  { code: 'auth_failed', how: 'credentials rejected', arrange: (f) => void h.sandbox.addFault({ kind: 'bad_credentials', tenant: f.tenant }) },
];

const respond = (f: Fixture<Platform>, path: string, status: number, body: unknown) =>
  void h.sandbox.addFault({ kind: 'respond', tenant: f.tenant, path, method: 'POST', status, body, times: 1 });

const badEmail = (f: Fixture<Platform>) => ({ app: f.app({ candidate: { ...f.app().candidate, email: 'not-an-email' } }) });
const unknownJob = (f: Fixture<Platform>) => ({ app: f.app({ atsJobId: f.jobId.replace(/^./, (c) => (c === '9' ? '8' : '9')) }) });

const CASES: Record<string, { platform: Platform; settings?: Record<string, unknown>; cases: Case[] }> = {
  'greenhouse v1': {
    platform: 'greenhouse',
    settings: { apiVersion: 'v1' },
    cases: [
      ...transport(),
      { code: 'forbidden', status: 403, how: 'On-Behalf-Of is not a user', arrange: (f) => ({ integration: { ...f.integration, settings: { ...f.integration.settings, onBehalfOf: '1' } } }) },
      { code: 'validation_failed', status: 422, how: '422 on a bad e-mail', arrange: badEmail },
      { code: 'job_not_found', status: 404, how: '404 on an unknown job', arrange: unknownJob },
      {
        code: 'job_not_found',
        status: 422,
        how: '422 "job not found" on applications[0].job_id',
        arrange: (f) => respond(f, '/v1/candidates', 422, { message: 'Validation error', errors: [{ field: 'applications[0].job_id', message: 'job not found' }] }),
        says: 'applications[0].job_id: job not found',
      },
      {
        code: 'duplicate',
        status: 422,
        how: '422 "already applied" on job_id',
        arrange: (f) => respond(f, '/v1/candidates', 422, { message: 'Validation error', errors: [{ field: 'job_id', message: 'Candidate has already applied to this job' }] }),
      },
      { code: 'unexpected_response', status: 201, how: '2xx without ids', arrange: (f) => respond(f, '/v1/candidates', 201, { ok: true }) },
    ],
  },
  'greenhouse v3': {
    platform: 'greenhouse',
    cases: [
      ...transport(),
      { code: 'forbidden', status: 403, how: '403 on applications.create', arrange: (f) => respond(f, '/v3/applications', 403, { message: 'Forbidden' }) },
      { code: 'validation_failed', status: 422, how: '422 on a bad e-mail', arrange: badEmail },
      { code: 'job_not_found', status: 404, how: '404 on an unknown job', arrange: unknownJob },
      {
        code: 'duplicate',
        status: 422,
        how: '422 "already applied"',
        arrange: (f) => respond(f, '/v3/applications', 422, { message: 'Validation error', errors: [{ field: 'job_id', message: 'Candidate has already applied to this job' }] }),
      },
      { code: 'unexpected_response', status: 201, how: '2xx without id', arrange: (f) => respond(f, '/v3/applications', 201, {}) },
    ],
  },
  lever: {
    platform: 'lever',
    cases: [
      ...transport(),
      { code: 'forbidden', status: 403, how: '403', arrange: (f) => respond(f, '/v1/opportunities', 403, { code: 'Forbidden', message: 'Key lacks the opportunities:write scope' }) },
      { code: 'validation_failed', status: 400, how: '400 on a bad e-mail', arrange: badEmail },
      { code: 'job_not_found', status: 404, how: '404 on an unknown posting', arrange: unknownJob },
      { code: 'duplicate', status: 409, how: '409', arrange: (f) => respond(f, '/v1/opportunities', 409, { code: 'Conflict', message: 'Duplicate opportunity' }) },
      { code: 'unexpected_response', status: 200, how: '2xx without data.id', arrange: (f) => respond(f, '/v1/opportunities', 200, { data: {} }) },
    ],
  },
  workable: {
    platform: 'workable',
    cases: [
      ...transport(),
      { code: 'forbidden', status: 403, how: '403 (token lacks w_candidates)', arrange: (f) => respond(f, '/candidates', 403, { error: 'Token lacks the w_candidates scope' }) },
      { code: 'validation_failed', status: 422, how: '422 on a bad e-mail', arrange: badEmail },
      { code: 'job_not_found', status: 404, how: '404 on an unknown shortcode', arrange: unknownJob },
      { code: 'duplicate', status: 409, how: '409 candidate already in the job', arrange: (f) => respond(f, '/candidates', 409, { error: 'Candidate already exists in this job' }) },
      { code: 'unexpected_response', status: 201, how: '2xx without candidate.id', arrange: (f) => respond(f, '/candidates', 201, { status: 'created' }) },
    ],
  },
  ashby: {
    platform: 'ashby',
    cases: [
      ...transport(),
      { code: 'auth_failed', status: 403, how: 'wrong API key (403)', arrange: (f) => ({ integration: { ...f.integration, credentials: { apiKey: 'wrong-key' } } }) },
      {
        code: 'forbidden',
        status: 403,
        how: '403 missing_endpoint_permission',
        arrange: (f) => respond(f, 'candidate.search', 403, { success: false, errorInfo: { code: 'missing_endpoint_permission', message: 'candidatesRead required' } }),
      },
      { code: 'validation_failed', status: 200, how: 'success:false invalid_input', arrange: badEmail },
      { code: 'job_not_found', status: 200, how: 'success:false requested_job_not_found', arrange: unknownJob },
      {
        code: 'duplicate',
        status: 200,
        how: 'success:false application_already_exists',
        arrange: (f) => respond(f, 'application.create', 200, { success: false, errorInfo: { code: 'application_already_exists', message: 'Already applied' } }),
      },
      { code: 'unexpected_response', status: 200, how: '200 without an envelope', arrange: (f) => respond(f, 'candidate.search', 200, { hello: 'world' }) },
    ],
  },
  generic: {
    platform: 'generic',
    cases: [
      ...transport(),
      { code: 'auth_failed', status: 401, how: 'wrong bearer token', arrange: (f) => ({ integration: { ...f.integration, credentials: { ...f.integration.credentials, token: 'wrong-token' } } }) },
      { code: 'forbidden', status: 403, how: '403', arrange: (f) => respond(f, '/applications', 403, { error: 'forbidden' }) },
      { code: 'validation_failed', status: 422, how: '422 required field missing', arrange: (f) => ({ integration: { ...f.integration, settings: { ...f.integration.settings, fieldMapping: { x: 'source' } } } }) },
      { code: 'duplicate', status: 409, how: '409', arrange: (f) => respond(f, '/applications', 409, { error: 'already received' }) },
      { code: 'unexpected_response', status: 404, how: '404 (no such receiver)', arrange: (f) => ({ integration: { ...f.integration, settings: { ...f.integration.settings, url: `${h.sandbox.url}/generic/nobody/applications` } } }) },
    ],
  },
};

for (const [name, vendor] of Object.entries(CASES)) {
  describe(`${name} error codes`, () => {
    const seen = new Set<string>();
    for (const c of vendor.cases) {
      const title = seen.has(c.code) ? `${c.code} (${c.how}) [2]` : `${c.code} ← ${c.how}`;
      seen.add(c.code);
      it(title, async () => {
        const f = fixture(h, vendor.platform, {
          settings: vendor.settings as never,
          ...(vendor.platform === 'generic' ? { spec: { generic: { authStyle: 'bearer', requiredFields: ['applicant.email'] } } } : {}),
        });
        if (vendor.platform === 'generic') f.integration.settings = { ...f.integration.settings, fieldMapping: { 'applicant.email': 'candidate.email' } } as never;
        const arranged = c.arrange(f as Fixture<Platform>) ?? {};
        const started = Date.now();
        const err = await h.connectors.deliver(arranged.app ?? f.app(), arranged.integration ?? f.integration).then(
          () => undefined,
          (e: unknown) => e,
        );
        h.sandbox.clearFaults();
        expect(err, 'expected an AtsError').toBeInstanceOf(AtsError);
        const e = err as AtsError;
        expect({ code: e.code, retriable: e.retriable }).toEqual({ code: c.code, retriable: isRetriable(c.code) });
        if (c.status !== undefined) expect(e.status).toBe(c.status);
        if (c.code === 'rate_limited') expect(e.retryAfterMs).toBe(2_000);
        if (c.code === 'timeout') expect(Date.now() - started).toBeLessThan(4_000);
        // The vendor's reason travels in the message whenever it sent one; refusals always carry one.
        if (c.says) expect(e.message).toContain(c.says);
        if (e.vendorMessage) expect(e.message).toContain(e.vendorMessage.slice(0, 60));
        if (['validation_failed', 'job_not_found', 'forbidden', 'duplicate'].includes(c.code) && c.status !== 201) expect(e.vendorMessage, 'the vendor said why').toBeTruthy();
        expect(e.message).not.toMatch(/[\w.+-]+@[\w-]+\.[a-z]{2,}/i); // no candidate e-mail address
        const serialised = JSON.stringify(e) + e.message + String(e.vendorMessage);
        for (const secret of Object.values(f.integration.credentials)) expect(serialised).not.toContain(secret);
      });
    }
  });
}
