/**
 * Job import on the real stack: each vendor's listing over several pages from the sandbox (its own
 * pagination style), a rate-limit answer midway, jobs upserted, JobSynced events published through the
 * outbox and read back from `ats.jobs` with a plain avsc decoder.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Platform } from '../../registry/integration.ts';
import type { NewIntegrationInput } from '../../registry/validation.ts';
import { startJobImport, type SyncSummary } from '../../producers/jobs/job-import.ts';
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
async function integrationOn(platform: Exclude<Platform, 'generic'>, rateLimit: { limit: number; windowMs: number } | null = null) {
  const input = sampleIntegration(platform);
  const tenant = platform === 'workable' ? `acme${randomUUID().slice(0, 6)}` : `t-${randomUUID().slice(0, 8)}`;
  const settings = platform === 'workable' ? { subdomain: tenant } : platform === 'greenhouse' ? { apiVersion: 'v3', onBehalfOf: '4080' } : input.settings;
  h.sandbox.addTenant({ platform, tenant, credentials: input.credentials as Record<string, string>, users: ['4080'], rateLimit });
  const integration = await h.createIntegration({ ...input, settings, apiBaseUrl: h.sandbox.urlFor(platform) } as NewIntegrationInput);
  return { integration, tenant };
}

function jobs(n: number, platform: Platform): SandboxJob[] {
  return Array.from({ length: n }, (_, i) => ({
    id: platform === 'greenhouse' ? String(4_000_000 + i) : `job-${i}`,
    title: `Engineer ${i}`,
    requisitionCode: `REQ-${i}`,
    location: i % 2 ? 'Berlin' : 'Remote',
    status: 'open' as const,
  }));
}

async function importJobs(integration: Parameters<typeof startJobImport>[1]): Promise<SyncSummary> {
  const run = await startJobImport({ pool: h.pool, lister: h.connectors, jobsTopic: h.config.inbound.jobsTopic, logger: h.logger, maxRetryWaitMs: 3_000 }, integration, 'cli');
  return run.done;
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
      expect(first).toMatchObject({ status: 'succeeded', pages: 3, fetched: 230, opened: 230, updated: 0, closed: 0 });
      // Workable announces X-Rate-Limit-Remaining: 0 and its reset, so the client waits instead of earning the 429.
      if (platform === 'workable') expect(first.rateLimited).toBe(0);
      else expect(first.rateLimited).toBeGreaterThanOrEqual(1);

      // One job disappears, one changes its title; then a run with nothing changed.
      const next = listing.filter((_, i) => i !== 3).map((j, i) => (i === 10 ? { ...j, title: 'Staff Engineer' } : j));
      h.sandbox.setJobs(platform, tenant, next);
      const second = await importJobs(integration);
      expect(second).toMatchObject({ status: 'succeeded', opened: 0, updated: 1, closed: 1, unchanged: 228 });
      const third = await importJobs(integration);
      expect(third).toMatchObject({ status: 'succeeded', opened: 0, updated: 0, closed: 0, unchanged: 229 });

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
      .toMatchObject({ id: runId, status: 'succeeded', opened: 3, pages: 1, trigger: 'api' });

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
  });
});
