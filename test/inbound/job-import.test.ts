/**
 * Job import on the real stack: each vendor's listing over several pages from the sandbox (its own
 * pagination style), a rate-limit answer midway, jobs upserted, JobSynced events published through the
 * outbox and read back from `ats.jobs` with a plain avsc decoder. Then incremental runs: the vendor's
 * updated-since filter as the sandbox received it, exactly the changes published, the periodic full
 * run closing what vanished, and a failed run leaving the mark where it was.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Platform } from '../../registry/integration.ts';
import type { NewIntegrationInput } from '../../registry/validation.ts';
import { listSyncRuns, startJobImport, type JobSyncPolicy, type SyncSummary } from '../../producers/jobs/job-import.ts';
import type { SandboxJob } from '../../sandbox/jobs.ts';
import { sampleIntegration } from '../registry/support.ts';
import { inboundHarness, type InboundHarness } from './support.ts';

let h: InboundHarness;
beforeAll(async () => {
  h = await inboundHarness();
  await h.startRelay();
}, 60_000);
afterAll(async () => h?.close());

/** An integration pointing at a sandbox tenant of its own; the tenant's limit is `rateLimit`. */
async function integrationOn(platform: Exclude<Platform, 'generic'>, rateLimit: { limit: number; windowMs: number } | null = null, greenhouseVersion: 'v1' | 'v3' = 'v3') {
  const input = sampleIntegration(platform);
  const tenant = platform === 'workable' ? `acme${randomUUID().slice(0, 6)}` : `t-${randomUUID().slice(0, 8)}`;
  const settings = platform === 'workable' ? { subdomain: tenant } : platform === 'greenhouse' ? { apiVersion: greenhouseVersion, onBehalfOf: '4080' } : input.settings;
  if (platform === 'greenhouse' && greenhouseVersion === 'v1') input.credentials = { apiKey: `gh-key-${randomUUID()}` };
  h.sandbox.addTenant({ platform, tenant, credentials: input.credentials as Record<string, string>, users: ['4080'], rateLimit });
  const integration = await h.createIntegration({ ...input, settings, apiBaseUrl: h.sandbox.urlFor(platform) } as NewIntegrationInput);
  return { integration, tenant };
}

/** `updatedAt` given: the jobs were last edited then; omitted: the sandbox stamps them now. */
function jobs(n: number, platform: Platform, updatedAt?: number): SandboxJob[] {
  return Array.from({ length: n }, (_, i) => ({
    id: platform === 'greenhouse' ? String(4_000_000 + i) : `job-${i}`,
    title: `Engineer ${i}`,
    requisitionCode: `REQ-${i}`,
    location: i % 2 ? 'Berlin' : 'Remote',
    status: 'open' as const,
    ...(updatedAt === undefined ? {} : { updatedAt }),
  }));
}

async function importJobs(integration: Parameters<typeof startJobImport>[1], run: { full?: boolean; policy?: Partial<JobSyncPolicy> } = {}): Promise<SyncSummary> {
  const policy = { ...h.config.inbound.jobSync, ...run.policy };
  const started = await startJobImport({ pool: h.pool, lister: h.connectors, jobsTopic: h.config.inbound.jobsTopic, policy, logger: h.logger, maxRetryWaitMs: 3_000 }, integration, 'cli', { full: run.full === true });
  return started.done;
}

async function jobEvents(integrationId: string): Promise<Array<Record<string, unknown>>> {
  await expect.poll(() => h.outboxPending(), { timeout: 30_000 }).toBe(0);
  return (await h.read(h.config.inbound.jobsTopic)).filter((e) => e.key.startsWith(`${integrationId}:`)).map((e) => e.value);
}

describe('job import', () => {
  it.each(['greenhouse', 'lever', 'workable', 'ashby'] as const)(
    '%s: several pages with a 429 midway → each job once; a vanished job closed; a changed one updated; an unchanged run publishes nothing',
    async (platform) => {
      // Two requests per window: the third (Greenhouse: token + 2 pages) gets a 429 with Retry-After.
      const { integration, tenant } = await integrationOn(platform, { limit: 2, windowMs: 4_000 });
      const listing = jobs(230, platform);
      h.sandbox.setJobs(platform, tenant, listing);
      await h.repo.putJobMapping(integration.id, 'board-job-7', listing[7]!.id);

      const first = await importJobs(integration);
      expect(first).toMatchObject({ status: 'succeeded', mode: 'full', fullReason: 'first', pages: 3, fetched: 230, opened: 230, updated: 0, closed: 0 });
      // Workable announces X-Rate-Limit-Remaining: 0 and its reset, so the client waits instead of earning the 429.
      if (platform === 'workable') expect(first.rateLimited).toBe(0);
      else expect(first.rateLimited).toBeGreaterThanOrEqual(1);

      // One job disappears, one changes its title; then a run with nothing changed (both forced full).
      const next = listing.filter((_, i) => i !== 3).map((j, i) => (i === 10 ? { ...j, title: 'Staff Engineer' } : j));
      h.sandbox.setJobs(platform, tenant, next);
      const second = await importJobs(integration, { full: true });
      expect(second).toMatchObject({ status: 'succeeded', mode: 'full', fullReason: 'forced', opened: 0, updated: 1, closed: 1, unchanged: 228 });
      const third = await importJobs(integration, { full: true });
      expect(third).toMatchObject({ status: 'succeeded', mode: 'full', opened: 0, updated: 0, closed: 0, unchanged: 229 });

      const all = await jobEvents(integration.id);
      const events = all.filter((e) => e.syncRunId === first.runId);
      expect(events).toHaveLength(230);
      expect(new Set(events.map((e) => e.externalJobId)).size).toBe(230);
      expect(events.every((e) => e.change === 'opened' && e.status === 'open' && e.syncRunId === first.runId)).toBe(true);
      expect(events.find((e) => e.externalJobId === listing[7]!.id)).toMatchObject({ mappedJobId: 'board-job-7', requisitionCode: 'REQ-7', location: 'Berlin', title: 'Engineer 7' });
      const secondEvents = all.filter((e) => e.syncRunId === second.runId);
      expect(secondEvents.map((e) => [e.change, e.externalJobId]).sort()).toEqual([['closed', listing[3]!.id], ['updated', listing[11]!.id]].sort());
      expect(secondEvents.find((e) => e.change === 'updated')).toMatchObject({ title: 'Staff Engineer', status: 'open' });
      expect(all.filter((e) => e.syncRunId === third.runId)).toHaveLength(0);
      expect(all).toHaveLength(232);
      // The mapping is the operator's: import never touched it.
      expect(await h.repo.findJobMapping(integration.id, 'board-job-7')).toBe(listing[7]!.id);
    },
    60_000,
  );

  it('POST /sync answers 202 with a run id; GET /syncs lists the run with its counts; a second run at once is refused', async () => {
    const { integration, tenant } = await integrationOn('lever');
    h.sandbox.setJobs('lever', tenant, jobs(3, 'lever'));
    h.sandbox.addFault({ kind: 'latency', platform: 'lever', tenant, ms: 1_000, times: 1 });
    const auth = { authorization: `Bearer ${h.adminToken}` };
    const started = await h.app.inject({ method: 'POST', url: `/integrations/${integration.id}/sync`, headers: auth });
    expect(started.statusCode, started.body).toBe(202);
    const { runId } = JSON.parse(started.body) as { runId: string };
    const busy = await h.app.inject({ method: 'POST', url: `/integrations/${integration.id}/sync`, headers: auth });
    expect(busy.statusCode).toBe(409);
    expect(JSON.parse(busy.body)).toMatchObject({ error: 'sync_running' });
    await expect
      .poll(async () => (JSON.parse((await h.app.inject({ method: 'GET', url: `/integrations/${integration.id}/syncs`, headers: auth })).body) as { items: Array<{ id: string; status: string }> }).items[0], { timeout: 15_000 })
      .toMatchObject({ id: runId, status: 'succeeded', opened: 3, pages: 1, trigger: 'api', mode: 'full', fullReason: 'first', sinceMark: null });

    // The next run is incremental unless forced full (query or body).
    const runs = async (): Promise<Array<{ id: string; status: string; mode: string; fullReason: string | null; sinceMark: string | null }>> =>
      (JSON.parse((await h.app.inject({ method: 'GET', url: `/integrations/${integration.id}/syncs`, headers: auth })).body) as { items: Array<{ id: string; status: string; mode: string; fullReason: string | null; sinceMark: string | null }> }).items;
    for (const [request, mode] of [
      [{ url: `/integrations/${integration.id}/sync` }, 'incremental'],
      [{ url: `/integrations/${integration.id}/sync?full=true` }, 'full'],
      [{ url: `/integrations/${integration.id}/sync`, payload: { full: true } }, 'full'],
    ] as const) {
      const res = await h.app.inject({ method: 'POST', headers: auth, ...request });
      expect(res.statusCode, res.body).toBe(202);
      const body = JSON.parse(res.body) as { runId: string; mode: string; sinceMark: string | null };
      expect(body).toMatchObject({ mode, fullReason: mode === 'full' ? 'forced' : null });
      await expect.poll(async () => (await runs()).find((r) => r.id === body.runId)?.status, { timeout: 15_000 }).toBe('succeeded');
      if (mode === 'incremental') expect((await runs())[0]).toMatchObject({ mode, sinceMark: body.sinceMark, fullReason: null });
    }
    expect((await h.app.inject({ method: 'POST', url: `/integrations/${integration.id}/sync?full=yes`, headers: auth })).statusCode).toBe(400);

    const suggestions = await h.app.inject({
      method: 'POST',
      url: `/integrations/${integration.id}/job-suggestions`,
      headers: auth,
      payload: { jobs: [{ jobId: 'a', requisitionCode: 'req-2' }, { jobId: 'b', title: 'engineer  1' }, { jobId: 'c', title: 'Chef' }] },
    });
    expect(JSON.parse(suggestions.body)).toEqual({
      items: [
        { jobId: 'a', externalJobId: 'job-2', matchedBy: 'requisition_code', title: 'Engineer 2' },
        { jobId: 'b', externalJobId: 'job-1', matchedBy: 'title', title: 'Engineer 1' },
        { jobId: 'c', externalJobId: null, matchedBy: null, title: null },
      ],
    });
  });

  it('a failing listing records a failed run and changes nothing', async () => {
    const { integration, tenant } = await integrationOn('ashby');
    h.sandbox.setJobs('ashby', tenant, jobs(150, 'ashby'));
    h.sandbox.addFault({ kind: 'error', platform: 'ashby', tenant, status: 401 });
    const run = await importJobs(integration);
    h.sandbox.clearFaults();
    expect(run).toMatchObject({ status: 'failed', opened: 0 });
    expect(run.error).toMatch(/auth_failed/);
    const { rows } = await h.pool.query('SELECT count(*)::int AS n FROM ats_jobs WHERE integration_id = $1', [integration.id]);
    expect(rows[0]).toEqual({ n: 0 });
    // A failed first run leaves no mark: the next one is still the first full run.
    expect(await importJobs(integration)).toMatchObject({ status: 'succeeded', mode: 'full', fullReason: 'first', opened: 150 });
  });
});

/** Where each vendor's job listing lives below the sandbox's vendor prefix (for faults). */
const LISTING_PATH = { greenhouse: '/jobs', lever: '/v1/postings', workable: '/jobs', ashby: 'job.list' } as const;

/** ISO-8601 basic, seconds, rounded down: what Workable's updated_after takes. */
const isoBasic = (iso: string): string => new Date(iso).toISOString().replace(/\.\d+Z$/, 'Z').replace(/[-:]/g, '');

describe('incremental job import', () => {
  const cases = [
    ['greenhouse v1', 'greenhouse', 'v1'],
    ['greenhouse v3', 'greenhouse', 'v3'],
    ['lever', 'lever', 'v3'],
    ['workable', 'workable', 'v3'],
    ['ashby', 'ashby', 'v3'],
  ] as const;
  it.each(cases)(
    '%s: first run full; an edit, a close and a new job → an incremental run with the vendor filter publishes exactly those; nothing changed → nothing; the periodic full run closes a vanished job',
    async (_label, platform, version) => {
      const { integration, tenant } = await integrationOn(platform, null, version);
      const policy = { fullEvery: 3, fullMaxAgeMs: 86_400_000, overlapMs: 60_000 };
      // Last edited an hour ago: older than the overlap, so an incremental run does not see them again.
      const listing = jobs(150, platform, Date.now() - 3_600_000);
      h.sandbox.setJobs(platform, tenant, listing);
      const first = await importJobs(integration, { policy });
      expect(first).toMatchObject({ status: 'succeeded', mode: 'full', fullReason: 'first', sinceMark: null, pages: 2, opened: 150 });

      // Job 5 edited, job 6 closed, one new job; job 7 vanishes (a delete: no incremental filter shows it).
      const added = { ...jobs(151, platform)[150]!, id: platform === 'greenhouse' ? '4999999' : 'job-new' };
      const changed = [
        ...listing.flatMap((j, i) => (i === 7 ? [] : i === 5 ? [{ ...j, title: 'Principal Engineer', updatedAt: undefined }] : i === 6 ? [{ ...j, status: 'closed' as const, updatedAt: undefined }] : [j])),
        added,
      ];
      h.sandbox.setJobs(platform, tenant, changed);
      // A 429 on the incremental listing's first call: retried after Retry-After, as in full runs.
      h.sandbox.addFault({ kind: 'rate_limit', platform, tenant, path: LISTING_PATH[platform], times: 1, retryAfterSeconds: 1 });
      const callsBefore = h.sandbox.jobListings(platform, tenant).length;
      const second = await importJobs(integration, { policy });
      expect(second).toMatchObject({ status: 'succeeded', mode: 'incremental', fullReason: null, pages: 1, fetched: 3, opened: 1, updated: 1, closed: 1, unchanged: 0, rateLimited: 1 });

      // What the vendor was asked: its own incremental filter, the previous run's start less the overlap.
      const asked = h.sandbox.jobListings(platform, tenant).slice(callsBefore);
      expect(asked).toHaveLength(1);
      const [{ nextMark: firstMark }] = (await h.pool.query<{ nextMark: string }>('SELECT next_mark AS "nextMark" FROM sync_logs WHERE id = $1', [first.runId])).rows as [{ nextMark: string }];
      if (platform === 'ashby') {
        expect(second.sinceMark).toBe(firstMark);
        expect(asked[0]!.body).toEqual({ syncToken: firstMark, limit: 100 });
      } else {
        expect(second.sinceMark).toBe(new Date(Date.parse(firstMark) - policy.overlapMs).toISOString());
        const since = second.sinceMark!;
        const expected = {
          greenhouse: version === 'v1' ? { updated_after: since, per_page: '100' } : { updated_at: `gte|${since}`, per_page: '100' },
          lever: { updated_at_start: String(Date.parse(since)), limit: '100' },
          workable: { updated_after: isoBasic(since), limit: '100' },
        }[platform];
        expect(asked[0]!.query).toEqual(expected);
      }

      // Nothing changed since: nothing published (re-read jobs within the overlap are unchanged).
      const third = await importJobs(integration, { policy });
      expect(third).toMatchObject({ status: 'succeeded', mode: 'incremental', opened: 0, updated: 0, closed: 0 });
      // The fourth run (every third after a full one) is the periodic full one: the vanished job is closed there, and only there.
      const fourth = await importJobs(integration, { policy });
      expect(fourth).toMatchObject({ status: 'succeeded', mode: 'full', fullReason: 'periodic', opened: 0, updated: 0, closed: 1, unchanged: 149 });

      const all = await jobEvents(integration.id);
      const of = (run: SyncSummary): Array<[unknown, unknown]> => all.filter((e) => e.syncRunId === run.runId).map((e): [unknown, unknown] => [e.change, e.externalJobId]).sort();
      expect(of(second)).toEqual(
        [
          ['closed', listing[6]!.id],
          ['opened', added.id],
          ['updated', listing[5]!.id],
        ].sort(),
      );
      expect(all.find((e) => e.syncRunId === second.runId && e.change === 'updated')).toMatchObject({ title: 'Principal Engineer', status: 'open' });
      expect(of(third)).toEqual([]);
      expect(of(fourth)).toEqual([['closed', listing[7]!.id]]);
      expect(all).toHaveLength(150 + 3 + 1);
    },
    60_000,
  );

  it('a failed incremental run leaves the mark: the next run asks from the same point and sees the change; an old full run makes the next one full', async () => {
    const { integration, tenant } = await integrationOn('lever');
    h.sandbox.setJobs('lever', tenant, jobs(3, 'lever', Date.now() - 3_600_000));
    const first = await importJobs(integration);
    h.sandbox.setJobs('lever', tenant, jobs(3, 'lever', Date.now() - 3_600_000).map((j, i) => (i === 1 ? { ...j, title: 'Chef', updatedAt: undefined } : j)));
    h.sandbox.addFault({ kind: 'error', platform: 'lever', tenant, status: 401, times: 1 });
    const failed = await importJobs(integration);
    expect(failed).toMatchObject({ status: 'failed', mode: 'incremental' });
    const retried = await importJobs(integration);
    expect(retried).toMatchObject({ status: 'succeeded', mode: 'incremental', sinceMark: failed.sinceMark, updated: 1 });
    const { rows } = await h.pool.query<{ id: string; next_mark: string | null }>('SELECT id, next_mark FROM sync_logs WHERE integration_id = $1', [integration.id]);
    expect(rows.find((r) => r.id === failed.runId)!.next_mark).toBeNull();
    expect(rows.find((r) => r.id === first.runId)!.next_mark).not.toBeNull();
    // Past the age limit of the last full run, the next run is full again whatever the count says.
    expect(await importJobs(integration, { policy: { fullEvery: 1_000, fullMaxAgeMs: 1 } })).toMatchObject({ status: 'succeeded', mode: 'full', fullReason: 'max_age', closed: 0 });
  });

  it('the sandbox refuses what the vendors refuse: Lever updated_at_start beside state, a malformed Greenhouse updated_after, an unknown Ashby syncToken', async () => {
    const lever = await integrationOn('lever');
    const key = (lever.integration.credentials as { apiKey: string }).apiKey;
    const auth = { authorization: `Basic ${Buffer.from(`${key}:`).toString('base64')}` };
    const refused = await fetch(`${h.sandbox.urlFor('lever')}/v1/postings?updated_at_start=1&state=published`, { headers: auth });
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({ code: 'BadRequestError' });
    expect((await fetch(`${h.sandbox.urlFor('lever')}/v1/postings?updated_at_start=1&confidentiality=all`, { headers: auth })).status).toBe(200);

    const gh = await integrationOn('greenhouse', null, 'v1');
    const ghKey = (gh.integration.credentials as { apiKey: string }).apiKey;
    const bad = await fetch(`${h.sandbox.urlFor('greenhouse')}/v1/jobs?updated_after=yesterday`, { headers: { authorization: `Basic ${Buffer.from(`${ghKey}:`).toString('base64')}`, 'on-behalf-of': '4080' } });
    expect(bad.status).toBe(422);

    // A refused mark (here Ashby's syncToken, as an expired one would be) does not fail the run: it reads the
    // whole listing instead — which also closes a job that vanished — and leaves a fresh mark.
    const ashby = await integrationOn('ashby');
    h.sandbox.setJobs('ashby', ashby.tenant, jobs(2, 'ashby'));
    await importJobs(ashby.integration);
    h.sandbox.setJobs('ashby', ashby.tenant, jobs(1, 'ashby'));
    await h.pool.query(`UPDATE sync_logs SET next_mark = 'not-a-token' WHERE integration_id = $1`, [ashby.integration.id]);
    const before = h.sandbox.jobListings('ashby', ashby.tenant).length;
    const run = await importJobs(ashby.integration);
    expect(run).toMatchObject({ status: 'succeeded', mode: 'full', fullReason: 'mark_refused', sinceMark: 'not-a-token', closed: 1, unchanged: 1 });
    expect(h.sandbox.jobListings('ashby', ashby.tenant).slice(before).map((c) => c.body)).toEqual([{ status: ['Open'], limit: 100 }]);
    const [row] = await listSyncRuns(h.pool, ashby.integration.id, 1);
    expect(row).toMatchObject({ mode: 'full', fullReason: 'mark_refused', status: 'succeeded' });
    expect(await importJobs(ashby.integration)).toMatchObject({ status: 'succeeded', mode: 'incremental', opened: 0, updated: 0, closed: 0 });
  });
});
