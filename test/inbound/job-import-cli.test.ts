/**
 * `npm run integrations -- import-jobs <id>` and `syncs <id>` as an operator runs them: a process of
 * their own, importing a sandbox tenant's jobs (two pages) into the test's database and jobs topic,
 * then listing the run with its counts. Refusals exit 1 with the reason on stderr.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listSyncRuns, startJobImport } from '../../producers/jobs/job-import.ts';
import type { NewIntegrationInput } from '../../registry/validation.ts';
import type { SandboxJob } from '../../sandbox/jobs.ts';
import { sampleIntegration } from '../registry/support.ts';
import { runScript, type ScriptRun } from '../support/run-script.ts';
import { inboundHarness, type InboundHarness } from './support.ts';

let h: InboundHarness;
beforeAll(async () => {
  h = await inboundHarness();
}, 60_000);
afterAll(async () => h?.close());

const cli = (args: string[]): Promise<ScriptRun> =>
  runScript('scripts/integrations.ts', args, { DATABASE_URL: h.config.database.url, TOPIC_JOBS: h.config.inbound.jobsTopic, ATS_ALLOW_PRIVATE_NETWORKS: 'true' });

/** A Lever integration on a sandbox tenant of its own, listing `n` open jobs. */
async function leverWithJobs(n: number) {
  const input = sampleIntegration('lever');
  const tenant = `t-${randomUUID().slice(0, 8)}`;
  h.sandbox.addTenant({ platform: 'lever', tenant, credentials: input.credentials as Record<string, string>, users: [], rateLimit: null });
  const jobs: SandboxJob[] = Array.from({ length: n }, (_, i) => ({ id: `job-${i}`, title: `Engineer ${i}`, requisitionCode: `REQ-${i}`, location: 'Remote', status: 'open' }));
  h.sandbox.setJobs('lever', tenant, jobs);
  const integration = await h.createIntegration({ ...input, apiBaseUrl: h.sandbox.urlFor('lever') } as NewIntegrationInput);
  return { integration, tenant };
}

describe('npm run integrations -- import-jobs / syncs', () => {
  it("imports a tenant's jobs over two pages, prints the run's counts, and syncs lists the run", async () => {
    const { integration } = await leverWithJobs(150);
    const imported = await cli(['import-jobs', integration.id]);
    expect(imported.code, imported.stderr).toBe(0);
    const field = (name: string): string | undefined => new RegExp(`^${name}\\s+(\\S+)$`, 'm').exec(imported.stdout)?.[1];
    expect({ status: field('status'), mode: field('mode'), fullReason: field('fullReason'), pages: field('pages'), fetched: field('fetched'), opened: field('opened'), closed: field('closed') }).toEqual({
      status: 'succeeded',
      mode: 'full',
      fullReason: 'first',
      pages: '2',
      fetched: '150',
      opened: '150',
      closed: '0',
    });
    const runId = field('runId')!;

    // What the process left behind: the jobs, one JobSynced outbox row each, the run.
    const { rows } = await h.pool.query<{ jobs: number; events: number }>(
      `SELECT (SELECT count(*)::int FROM ats_jobs WHERE integration_id = $1 AND status = 'open') AS jobs,
              (SELECT count(*)::int FROM outbox WHERE topic = $2 AND key LIKE $3) AS events`,
      [integration.id, h.config.inbound.jobsTopic, `${integration.id}:%`],
    );
    expect(rows[0]).toEqual({ jobs: 150, events: 150 });
    expect(await listSyncRuns(h.pool, integration.id)).toEqual([expect.objectContaining({ id: runId, trigger: 'cli', status: 'succeeded', opened: 150 })]);

    const listed = await cli(['syncs', integration.id]);
    expect(listed.code, listed.stderr).toBe(0);
    const [header, , row, ...more] = listed.stdout.trimEnd().split('\n');
    expect(header!.split(/\s{2,}/)).toEqual(['RUN', 'TRIGGER', 'STATUS', 'STARTED', 'MODE', 'SINCE', 'PAGES', 'OPENED', 'UPDATED', 'CLOSED', '429s', 'ERROR']);
    expect(more).toEqual([]);
    // SINCE and ERROR are blank for a first full run that succeeded.
    expect(row!.split(/\s{2,}/)).toEqual([runId, 'cli', 'succeeded', expect.stringMatching(/^\d{4}-\d\d-\d\dT/), 'full (first)', '2', '150', '0', '0', '0']);
  });

  it('exits 1 with the reason for a generic receiver (no job listing) and while another process runs an import of the integration', async () => {
    const generic = await h.createIntegration(sampleIntegration('generic'));
    const { integration, tenant } = await leverWithJobs(3);
    // An import in this process that holds the integration until aborted: every listing request outlasts the timeout.
    const slow = h.sandbox.addFault({ kind: 'latency', platform: 'lever', tenant, ms: 60_000 });
    const abort = new AbortController();
    // Once started, the run holds the integration's lock.
    const running = await startJobImport({ pool: h.pool, lister: h.connectors, jobsTopic: h.config.inbound.jobsTopic, policy: h.config.inbound.jobSync, logger: h.logger, signal: abort.signal }, integration, 'api');
    try {
      const [notImportable, busy] = await Promise.all([cli(['import-jobs', generic.id]), cli(['import-jobs', integration.id])]);
      expect(notImportable).toMatchObject({ code: 1, stderr: expect.stringContaining('generic receivers have no job listing') });
      expect(busy).toMatchObject({ code: 1, stderr: expect.stringContaining(`a job import of integration ${integration.id} is already running`) });
    } finally {
      abort.abort();
      h.sandbox.clearFaults(slow.id);
    }
    expect(await running.done).toMatchObject({ status: 'failed' });
    // The refused process recorded no run of its own: only the one it was refused for.
    expect((await listSyncRuns(h.pool, integration.id)).map((r) => [r.id, r.trigger])).toEqual([[running.runId, 'api']]);
  });
});
