/**
 * The periodic job import (producers/jobs/scheduler.ts, JOB_SYNC_INTERVAL_MS in the API process) on
 * the real stack. It imports every enabled integration it finds, so these tests run on a database of
 * their own, against sandbox tenants: a run per integration on the interval, and two schedulers on one
 * database (two API processes) never importing one integration twice at once.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobPageRequest } from '../../connectors/types.ts';
import { createPool } from '../../lib/db.ts';
import { listSyncRuns, type JobLister, type SyncLogRow } from '../../producers/jobs/job-import.ts';
import { createJobSyncScheduler, type JobSyncScheduler } from '../../producers/jobs/scheduler.ts';
import type { Integration, Platform } from '../../registry/integration.ts';
import type { IntegrationRecord } from '../../registry/integrations.ts';
import type { NewIntegrationInput } from '../../registry/validation.ts';
import type { SandboxJob } from '../../sandbox/jobs.ts';
import { isolatedDatabase, sampleIntegration } from '../registry/support.ts';
import { testEnv } from '../support/config.ts';
import { waitFor } from '../support/wait.ts';
import { inboundHarness, type InboundHarness } from './support.ts';

let db: Awaited<ReturnType<typeof isolatedDatabase>>;
let h: InboundHarness;
/** Every scheduler this file starts: closed at the end, whatever an assertion did. */
const started: JobSyncScheduler[] = [];
beforeAll(async () => {
  db = await isolatedDatabase();
  h = await inboundHarness({ DATABASE_URL: db.url });
}, 60_000);
afterAll(async () => {
  await Promise.all(started.map((s) => s.close()));
  await h?.close();
  await db?.drop();
});

const jobs = (n: number): SandboxJob[] => Array.from({ length: n }, (_, i) => ({ id: `job-${i}`, title: `Engineer ${i}`, requisitionCode: `REQ-${i}`, location: 'Remote', status: 'open' }));

/** An integration on a sandbox tenant of its own, listing `n` open jobs. */
async function importable(platform: 'lever' | 'ashby', n: number, enabled = true): Promise<{ integration: IntegrationRecord; tenant: string }> {
  const input = sampleIntegration(platform);
  const tenant = `t-${randomUUID().slice(0, 8)}`;
  h.sandbox.addTenant({ platform, tenant, credentials: input.credentials as Record<string, string>, users: [], rateLimit: null });
  h.sandbox.setJobs(platform, tenant, jobs(n));
  const integration = await h.createIntegration({ ...input, apiBaseUrl: h.sandbox.urlFor(platform), enabled } as NewIntegrationInput);
  return { integration, tenant };
}

const schedulerRuns = async (integrationId: string): Promise<SyncLogRow[]> => (await listSyncRuns(h.pool, integrationId)).filter((r) => r.trigger === 'scheduler').reverse();

function scheduler(opts: { intervalMs: number; lister?: JobLister; pool?: InboundHarness['pool'] }): JobSyncScheduler {
  const s = createJobSyncScheduler({
    pool: opts.pool ?? h.pool,
    repo: h.repo,
    lister: opts.lister ?? h.connectors,
    jobsTopic: h.config.inbound.jobsTopic,
    policy: h.config.inbound.jobSync,
    logger: h.logger,
    intervalMs: opts.intervalMs,
  });
  started.push(s);
  return s;
}

describe('periodic job import', () => {
  it('imports each enabled integration with a job listing on its interval, full first and then incremental; close aborts the run in progress and waits until it is recorded', async () => {
    const intervalMs = 300;
    const lever = await importable('lever', 3);
    const ashby = await importable('ashby', 2);
    const disabled = await importable('lever', 4, false);
    const generic = await h.createIntegration(sampleIntegration('generic'));

    const startedAt = Date.now();
    const s = scheduler({ intervalMs });
    s.start();
    s.start(); // idempotent: still one timer
    await waitFor('two scheduled runs of each integration', async () => (await schedulerRuns(lever.integration.id)).filter((r) => r.status === 'succeeded').length >= 2 && (await schedulerRuns(ashby.integration.id)).filter((r) => r.status === 'succeeded').length >= 2, 15_000);

    for (const [{ integration }, n] of [[lever, 3], [ashby, 2]] as const) {
      const [first, second] = await schedulerRuns(integration.id);
      expect(first).toMatchObject({ status: 'succeeded', mode: 'full', fullReason: 'first', opened: n });
      expect(second).toMatchObject({ status: 'succeeded', mode: 'incremental', opened: 0, updated: 0, closed: 0 });
      // Not at start: one interval first, and one between a round's end and the next round.
      expect(Date.parse(first!.startedAt)).toBeGreaterThanOrEqual(startedAt + intervalMs - 5);
      expect(Date.parse(second!.startedAt)).toBeGreaterThanOrEqual(Date.parse(first!.finishedAt!) + intervalMs - 5);
    }
    // A job opened in the ATS arrives with a later round, without anyone asking.
    h.sandbox.setJobs('lever', lever.tenant, jobs(4));
    await waitFor('the new job imported', async () => (await schedulerRuns(lever.integration.id)).some((r) => r.opened === 1), 15_000);

    // Closing mid-run: the listing in flight is aborted and close() resolves once the run is recorded as failed
    // (no mark written, so the next run asks for the same changes again), never left "running".
    const slow = h.sandbox.addFault({ kind: 'latency', platform: 'lever', tenant: lever.tenant, ms: 30_000 });
    try {
      const inProgress = await waitFor('a scheduled run in progress', async () => (await schedulerRuns(lever.integration.id)).find((r) => r.status === 'running'), 15_000);
      await Promise.all([s.close(), s.close()]); // idempotent
      expect((await schedulerRuns(lever.integration.id)).find((r) => r.id === inProgress.id)).toMatchObject({ status: 'failed', error: expect.stringContaining('aborted'), nextMark: null });
    } finally {
      h.sandbox.clearFaults(slow.id);
    }
    // Only this test's integrations: other test files run imports of their own in the same database.
    const ours = [lever.integration.id, ashby.integration.id, disabled.integration.id, generic.id];
    const { rows } = await h.pool.query<{ running: number }>(`SELECT count(*)::int AS running FROM sync_logs WHERE status = 'running' AND integration_id = ANY($1::uuid[])`, [ours]);
    expect(rows[0]).toEqual({ running: 0 });
    // Disabled integrations and generic receivers (no job listing) are left alone.
    for (const id of [disabled.integration.id, generic.id]) expect(await listSyncRuns(h.pool, id)).toEqual([]);
  });

  it('two schedulers on one database (two API processes) both import, never one integration twice at once', async () => {
    const a = await importable('lever', 2);
    const b = await importable('ashby', 2);
    // Each listing takes a while, so rounds of the two schedulers keep meeting on the same integration.
    const faults = [a, b].map(({ integration, tenant }) => h.sandbox.addFault({ kind: 'latency', platform: integration.platform as Platform, tenant, ms: 250 }));
    // Which scheduler called the ATS, and how many calls per integration were in flight at once.
    const calls = { first: 0, second: 0 };
    const inFlight = new Map<string, number>();
    let mostAtOnce = 0;
    const counting = (who: keyof typeof calls): JobLister => ({
      async listJobsPage(integration: Integration, request: JobPageRequest, signal?: AbortSignal) {
        calls[who]++;
        const now = (inFlight.get(integration.id) ?? 0) + 1;
        inFlight.set(integration.id, now);
        mostAtOnce = Math.max(mostAtOnce, now);
        try {
          return await h.connectors.listJobsPage(integration, request, signal);
        } finally {
          inFlight.set(integration.id, inFlight.get(integration.id)! - 1);
        }
      },
    });
    // Its own pool, as another process would have.
    const otherPool = createPool(h.config.database, { max: 4 });
    try {
      const first = scheduler({ intervalMs: 50, lister: counting('first') });
      const second = scheduler({ intervalMs: 50, lister: counting('second'), pool: otherPool });
      first.start();
      second.start();
      await waitFor(
        'four scheduled runs of each integration, from both schedulers',
        async () => calls.first > 0 && calls.second > 0 && (await schedulerRuns(a.integration.id)).length >= 4 && (await schedulerRuns(b.integration.id)).length >= 4,
        20_000,
      );
      await Promise.all([first.close(), second.close()]);
    } finally {
      for (const f of faults) h.sandbox.clearFaults(f.id);
      await otherPool.end();
    }

    expect(mostAtOnce).toBe(1);
    for (const { integration } of [a, b]) {
      const runs = await schedulerRuns(integration.id);
      // One after the other: each run finished before the next one started.
      for (let i = 1; i < runs.length; i++) expect(Date.parse(runs[i]!.startedAt)).toBeGreaterThanOrEqual(Date.parse(runs[i - 1]!.finishedAt!));
      // No run was found "running" by another and written off as interrupted.
      expect(runs.filter((r) => r.error?.includes('interrupted'))).toEqual([]);
      expect(runs[0]).toMatchObject({ status: 'succeeded', mode: 'full', opened: 2 });
      expect(runs.slice(1).every((r) => r.opened === 0)).toBe(true);
    }
  });

  it('the API process runs it when JOB_SYNC_INTERVAL_MS is set, within the ATS_RATE_LIMITS the operator set', async () => {
    const { integration, tenant } = await importable('lever', 150);
    // One request, then one every 2 s: the second page has to wait for its slot (Lever's default allows 20 at once).
    const child = spawn(process.execPath, ['--import', 'tsx', 'api/cli.ts', '--port', '0', '--host', '127.0.0.1'], {
      env: { ...testEnv(), DATABASE_URL: db.url, JOB_SYNC_INTERVAL_MS: '200', ATS_RATE_LIMITS: 'lever=1/2s', ATS_ALLOW_PRIVATE_NETWORKS: 'true', TOPIC_JOBS: h.config.inbound.jobsTopic, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      const run = await waitFor('a scheduled run in the API process', async () => (await schedulerRuns(integration.id)).find((r) => r.status === 'succeeded'), 20_000);
      expect(run).toMatchObject({ mode: 'full', pages: 2, opened: 150 });
      const [first, second] = h.sandbox.jobListings('lever', tenant);
      expect(second!.at - first!.at).toBeGreaterThanOrEqual(1_900);
      child.kill('SIGTERM');
      expect(await exited, stderr).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 30_000);
});
