/**
 * Job import: fetch one integration's open jobs, or the jobs changed since its last run (all pages,
 * through the integration's rate limit), compare with what the last run stored in `ats_jobs`, and in one transaction upsert
 * the jobs, write one JobSynced outbox row per change and finish the run's `sync_logs` row. The
 * outbox relay publishes the rows to `ats.jobs`.
 *
 *   listed now?   stored before?        content (title, requisition code, location)   → change
 *   open          no                    –                                              opened
 *   open          closed                –                                              opened   (reopened)
 *   open          open                  differs                                        updated
 *   open          open                  same                                           – (nothing published)
 *   closed / not listed   open          –                                              closed   (not listed: full runs only)
 *
 * Full and incremental runs. A full run reads the whole open listing: only there is a job that
 * disappeared without a change (a Greenhouse delete, a posting dropped from the open filter) seen as
 * missing, hence closed. An incremental run asks the vendor for what changed since the previous run
 * (its start, widened by `overlapMs` against clock skew and against changes committed while that run
 * paged; Ashby: the syncToken it was handed), in every state, so a close arrives as a changed job; a
 * job not in that answer did not change and is left alone. Re-read jobs hash the same, so the overlap
 * costs requests, never events. Full: the first run, a forced one, every `fullEvery`th run, once the
 * last full run is `fullMaxAgeMs` old, or when no mark is known. The mark is kept on the run's
 * `sync_logs` row (`next_mark`) and only a succeeded run writes it: a failed run leaves the previous
 * mark, so its changes are asked for again.
 *
 * A page answered 429/5xx is retried after the vendor's Retry-After (the limiter also pauses), up to
 * `maxPageAttempts`; a run that fails part-way changes nothing (the transaction is only opened once
 * every page is in), so a half listing never closes jobs.
 *
 * One run per integration at a time across processes: a session advisory lock held on a dedicated
 * connection for the whole run (released by PostgreSQL if the process dies).
 */
import { createHash, randomUUID } from 'node:crypto';
import type { AtsJob, JobPage, JobPageRequest } from '../../connectors/types.ts';
import { inTransaction, type Pool, type PoolClient } from '../../lib/db.ts';
import type { CodeOf } from '../../lib/error-codes.ts';
import { RelayError, truncate } from '../../lib/errors.ts';
import type { JobChange, JobSynced } from '../../lib/inbound-events.ts';
import type { Integration } from '../../registry/integration.ts';
import type { Logger } from '../../lib/logger.ts';
import { sleep } from '../../lib/sleep.ts';
import { insertOutboxRows } from '../outbox/enqueue.ts';

export type JobImportErrorCode = CodeOf<'job import'>;

export class JobImportError extends RelayError<JobImportErrorCode> {
  override name = 'JobImportError';
}

export type SyncTrigger = 'cli' | 'api' | 'scheduler';

export interface JobLister {
  listJobsPage(integration: Integration, request: JobPageRequest, signal?: AbortSignal): Promise<JobPage>;
}

export type SyncMode = 'full' | 'incremental';
/** Why a run read the whole listing. */
export type FullReason = 'first' | 'forced' | 'periodic' | 'max_age' | 'no_mark' | 'mark_refused';

/** config.inbound.jobSync: when a run is full, and how far back an incremental one reaches. */
export interface JobSyncPolicy {
  /** Every Nth run is full (1 = always). */
  fullEvery: number;
  /** A run is full once the last full run is this old (0 = no limit). */
  fullMaxAgeMs: number;
  /** Subtracted from the previous run's start (timestamp marks only). */
  overlapMs: number;
}

export interface JobImportOptions {
  pool: Pool;
  lister: JobLister;
  /** config.inbound.jobsTopic */
  jobsTopic: string;
  /** config.inbound.jobSync */
  policy: JobSyncPolicy;
  logger: Logger;
  /** Attempts per page on a retriable failure (429, 5xx, timeouts); default 5. */
  maxPageAttempts?: number;
  /** Longest wait before retrying a page, whatever Retry-After says; default 60 s. */
  maxRetryWaitMs?: number;
  /** Upper bound on pages per run, against a vendor that never stops paging; default 1,000. */
  maxPages?: number;
  signal?: AbortSignal;
}

export interface SyncSummary {
  runId: string;
  status: 'succeeded' | 'failed';
  mode: SyncMode;
  fullReason: FullReason | null;
  /** What an incremental run asked for (null for a full run). */
  sinceMark: string | null;
  pages: number;
  fetched: number;
  opened: number;
  updated: number;
  closed: number;
  unchanged: number;
  rateLimited: number;
  error: string | null;
}

export interface SyncRun {
  runId: string;
  mode: SyncMode;
  fullReason: FullReason | null;
  sinceMark: string | null;
  /** Settles when the run is recorded as succeeded or failed; never rejects. */
  done: Promise<SyncSummary>;
}

const LOCK_NAMESPACE = 4_242_014;

function contentHash(job: AtsJob): string {
  return createHash('sha256').update(JSON.stringify([job.title, job.requisitionCode, job.location])).digest('hex').slice(0, 32);
}

/** Ashby hands out a syncToken; the other vendors filter on an updated timestamp. */
const usesSyncToken = (integration: Integration): boolean => integration.platform === 'ashby';

interface RunPlan {
  mode: SyncMode;
  fullReason: FullReason | null;
  /** The vendor filter value of an incremental run. */
  since: string | null;
}

/** Full or incremental, from the integration's succeeded runs (read under its lock). */
async function planRun(db: Pick<PoolClient, 'query'>, integration: Integration, policy: JobSyncPolicy, forceFull: boolean): Promise<RunPlan> {
  const full = (fullReason: FullReason): RunPlan => ({ mode: 'full', fullReason, since: null });
  if (forceFull) return full('forced');
  const { rows } = await db.query<{ last_full_age_ms: number | null; incremental_since: number; mark: string | null }>(
    `WITH ok AS (SELECT mode, next_mark, started_at FROM sync_logs WHERE integration_id = $1 AND status = 'succeeded'),
          last_full AS (SELECT max(started_at) AS at FROM ok WHERE mode = 'full')
     SELECT (SELECT extract(epoch FROM now() - at) * 1000 FROM last_full)::float8 AS last_full_age_ms,
            (SELECT count(*) FROM ok, last_full WHERE ok.mode = 'incremental' AND ok.started_at > last_full.at)::int AS incremental_since,
            (SELECT next_mark FROM ok ORDER BY started_at DESC LIMIT 1) AS mark`,
    [integration.id],
  );
  const { last_full_age_ms: age, incremental_since: since, mark } = rows[0]!;
  if (age === null) return full('first');
  if (mark === null) return full('no_mark');
  if (since + 1 >= policy.fullEvery) return full('periodic');
  if (policy.fullMaxAgeMs > 0 && age >= policy.fullMaxAgeMs) return full('max_age');
  if (usesSyncToken(integration)) return { mode: 'incremental', fullReason: null, since: mark };
  const at = Date.parse(mark);
  if (Number.isNaN(at)) return full('no_mark');
  return { mode: 'incremental', fullReason: null, since: new Date(at - policy.overlapMs).toISOString() };
}

/**
 * The integration's advisory lock, if free. A holder with no run marked running is between its
 * final status write and its unlock (or between its lock and its row): a caller that has just seen
 * the run succeed must not hear "already running", so that short window is waited out (≤ 2 s).
 */
async function tryLock(client: PoolClient, integrationId: string): Promise<boolean> {
  const deadline = Date.now() + 2_000;
  for (;;) {
    const { rows } = await client.query<{ ok: boolean; running: boolean }>(
      `SELECT pg_try_advisory_lock($1, hashtext($2::text)) AS ok,
              EXISTS (SELECT 1 FROM sync_logs WHERE integration_id = $2::uuid AND status = 'running') AS running`,
      [LOCK_NAMESPACE, integrationId],
    );
    if (rows[0]!.ok) return true;
    if (rows[0]!.running || Date.now() >= deadline) return false;
    await sleep(50);
  }
}

/**
 * Take the integration's lock, decide full or incremental (`full` forces a full run), open a
 * `sync_logs` row and run the import in the background.
 * Throws JobImportError('sync_running') when another run of this integration holds the lock.
 */
export async function startJobImport(opts: JobImportOptions, integration: Integration, trigger: SyncTrigger, run: { full?: boolean } = {}): Promise<SyncRun> {
  if (integration.platform === 'generic') {
    throw new JobImportError('not_importable', 'generic receivers have no job listing to import', { retriable: false, status: 400, context: { integrationId: integration.id } });
  }
  const lock = await opts.pool.connect();
  let locked = false;
  try {
    locked = await tryLock(lock, integration.id);
    if (!locked) {
      throw new JobImportError('sync_running', `a job import of integration ${integration.id} is already running`, { retriable: true, status: 409, context: { integrationId: integration.id } });
    }
    // A run left "running" by a process that died: the lock is free again, so it is not running.
    await lock.query(`UPDATE sync_logs SET status = 'failed', error = 'interrupted (the process running it stopped)', finished_at = now() WHERE integration_id = $1 AND status = 'running'`, [integration.id]);
    const runId = randomUUID();
    const plan = await planRun(lock, integration, opts.policy, run.full === true);
    await lock.query(`INSERT INTO sync_logs (id, integration_id, trigger, status, mode, full_reason, since_mark) VALUES ($1, $2, $3, 'running', $4, $5, $6)`, [
      runId,
      integration.id,
      trigger,
      plan.mode,
      plan.fullReason,
      plan.since,
    ]);
    const done = runImport(opts, integration, runId, plan).finally(async () => {
      await lock.query('SELECT pg_advisory_unlock($1, hashtext($2))', [LOCK_NAMESPACE, integration.id]).catch(() => undefined);
      lock.release();
    });
    return { runId, mode: plan.mode, fullReason: plan.fullReason, sinceMark: plan.since, done };
  } catch (err) {
    if (locked) await lock.query('SELECT pg_advisory_unlock($1, hashtext($2))', [LOCK_NAMESPACE, integration.id]).catch(() => undefined);
    lock.release();
    throw err;
  }
}

interface Fetched {
  jobs: Map<string, AtsJob>;
  /** The last page's syncToken (Ashby), if any. */
  syncToken: string | null;
}

async function fetchAll(opts: JobImportOptions, integration: Integration, since: string | null, summary: SyncSummary, log: Logger): Promise<Fetched> {
  const maxAttempts = opts.maxPageAttempts ?? 5;
  const maxWait = opts.maxRetryWaitMs ?? 60_000;
  const jobs = new Map<string, AtsJob>();
  let cursor: string | null = null;
  for (let page = 0; page < (opts.maxPages ?? 1_000); page++) {
    let result: JobPage | undefined;
    for (let attempt = 1; !result; attempt++) {
      try {
        result = await opts.lister.listJobsPage(integration, { cursor, since }, opts.signal);
      } catch (err) {
        const e = err as Partial<RelayError> & { retryAfterMs?: number };
        if (!e.retriable || attempt >= maxAttempts || opts.signal?.aborted) throw err;
        if (e.code === 'rate_limited') summary.rateLimited++;
        const waitMs = Math.min(maxWait, e.retryAfterMs ?? 500 * 2 ** (attempt - 1));
        log.warn({ code: e.code, status: e.status, attempt, waitMs, page }, 'job page failed; retrying it');
        await new Promise((r) => setTimeout(r, waitMs));
      }
    }
    summary.pages++;
    summary.fetched += result.jobs.length;
    // The same job on two pages (a listing that shifted while we paged) counts once.
    for (const job of result.jobs) jobs.set(job.externalJobId, job);
    if (!result.next) return { jobs, syncToken: result.syncToken ?? null };
    cursor = result.next;
  }
  throw new JobImportError('not_importable', `more than ${opts.maxPages ?? 1_000} pages of jobs; stopped`, { retriable: false, context: { integrationId: integration.id } });
}

interface StoredJob {
  external_job_id: string;
  status: 'open' | 'closed';
  content_hash: string;
}

async function apply(client: PoolClient, opts: JobImportOptions, integration: Integration, runId: string, listed: Map<string, AtsJob>, summary: SyncSummary): Promise<void> {
  const full = summary.mode === 'full';
  const now = Date.now();
  const { rows } = await client.query<StoredJob>('SELECT external_job_id, status, content_hash FROM ats_jobs WHERE integration_id = $1 FOR UPDATE', [integration.id]);
  const stored = new Map(rows.map((r) => [r.external_job_id, r]));
  const mappings = await client.query<{ job_id: string; external_job_id: string }>('SELECT job_id, external_job_id FROM job_mappings WHERE integration_id = $1', [integration.id]);
  const mappedJob = new Map(mappings.rows.map((m) => [m.external_job_id, m.job_id]));

  const changes: Array<{ change: JobChange; job: AtsJob }> = [];
  for (const job of listed.values()) {
    const before = stored.get(job.externalJobId);
    const hash = contentHash(job);
    if (job.status !== 'open') {
      if (before?.status === 'open') changes.push({ change: 'closed', job });
      continue;
    }
    if (!before || before.status === 'closed') changes.push({ change: 'opened', job });
    else if (before.content_hash !== hash) changes.push({ change: 'updated', job });
    else summary.unchanged++;
  }
  // Only a full listing says a job is gone; an incremental answer leaves out every job that did not change.
  const missing = full ? [...stored.values()].filter((s) => s.status === 'open' && !listed.has(s.external_job_id)) : [];
  if (missing.length) {
    const { rows: gone } = await client.query<{ external_job_id: string; title: string; requisition_code: string | null; location: string | null; vendor_updated_at: string | null }>(
      'SELECT external_job_id, title, requisition_code, location, vendor_updated_at FROM ats_jobs WHERE integration_id = $1 AND external_job_id = ANY($2::text[])',
      [integration.id, missing.map((m) => m.external_job_id)],
    );
    for (const g of gone) {
      changes.push({
        change: 'closed',
        job: { externalJobId: g.external_job_id, title: g.title, status: 'closed', requisitionCode: g.requisition_code, location: g.location, updatedAt: g.vendor_updated_at },
      });
    }
  }

  for (const { change, job } of changes) {
    const status = change === 'closed' ? 'closed' : 'open';
    await client.query(
      `INSERT INTO ats_jobs (integration_id, external_job_id, title, requisition_code, location, status, vendor_updated_at, content_hash, closed_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $6 = 'closed' THEN now() END)
       ON CONFLICT (integration_id, external_job_id) DO UPDATE SET title = EXCLUDED.title, requisition_code = EXCLUDED.requisition_code,
         location = EXCLUDED.location, status = EXCLUDED.status, vendor_updated_at = EXCLUDED.vendor_updated_at,
         content_hash = EXCLUDED.content_hash, updated_at = now(), closed_at = EXCLUDED.closed_at`,
      [integration.id, job.externalJobId, job.title, job.requisitionCode, job.location, status, job.updatedAt, contentHash(job)],
    );
    summary[change]++;
  }
  const events = changes.map(({ change, job }): JobSynced => ({
    eventId: randomUUID(),
    occurredAt: now,
    change,
    companyId: integration.companyId,
    integrationId: integration.id,
    platform: integration.platform,
    externalJobId: job.externalJobId,
    title: job.title,
    status: change === 'closed' ? 'closed' : 'open',
    requisitionCode: job.requisitionCode,
    location: job.location,
    mappedJobId: mappedJob.get(job.externalJobId) ?? null,
    syncRunId: runId,
  }));
  if (events.length) {
    await insertOutboxRows(
      client,
      events.map((e) => ({ eventId: e.eventId, topic: opts.jobsTopic, key: `${e.integrationId}:${e.externalJobId}`, payload: e })),
    );
  }
}

/** A final refusal of an incremental request that is not about who we are: the mark, not the listing, is the problem. */
function markRefused(plan: RunPlan, err: unknown): boolean {
  if (plan.mode !== 'incremental') return false;
  const e = err as Partial<RelayError>;
  return e.retriable === false && e.code !== 'auth_failed' && e.code !== 'forbidden' && e.code !== 'not_importable';
}

async function runImport(opts: JobImportOptions, integration: Integration, runId: string, plan: RunPlan): Promise<SyncSummary> {
  const log = opts.logger.child({ component: 'job-import', integrationId: integration.id, runId, mode: plan.mode });
  const summary: SyncSummary = {
    runId,
    status: 'succeeded',
    mode: plan.mode,
    fullReason: plan.fullReason,
    sinceMark: plan.since,
    pages: 0,
    fetched: 0,
    opened: 0,
    updated: 0,
    closed: 0,
    unchanged: 0,
    rateLimited: 0,
    error: null,
  };
  const finish = (client: Pick<PoolClient, 'query'>, nextMark: string | null): Promise<unknown> =>
    client.query(
      `UPDATE sync_logs SET status = $2, pages = $3, fetched = $4, opened = $5, updated = $6, closed = $7, unchanged = $8, rate_limited = $9, error = $10, next_mark = $11,
              mode = $12, full_reason = $13, finished_at = now() WHERE id = $1`,
      [runId, summary.status, summary.pages, summary.fetched, summary.opened, summary.updated, summary.closed, summary.unchanged, summary.rateLimited, summary.error, nextMark, summary.mode, summary.fullReason],
    );
  try {
    // Taken before the first page: whatever changes while we page is at or after it, so the next run
    // asks for it again (the vendor's newest updated stamp would skip a job edited on a page already read).
    const startedAt = new Date().toISOString();
    const fetched = await fetchAll(opts, integration, plan.since, summary, log).catch((err: unknown) => {
      if (!markRefused(plan, err)) throw err;
      // The vendor would not take the mark (Ashby's syncToken expired, a filter value refused): the
      // listing itself is fine, so this run reads it whole instead of failing every run until the next full one.
      log.warn({ code: (err as RelayError).code, since: plan.since }, 'the vendor refused the incremental mark; reading the whole listing');
      Object.assign(summary, { mode: 'full', fullReason: 'mark_refused', pages: 0, fetched: 0 });
      return fetchAll(opts, integration, null, summary, log);
    });
    // No syncToken from Ashby: no mark, so the next run is full rather than guessing.
    const nextMark = usesSyncToken(integration) ? fetched.syncToken : startedAt;
    await inTransaction(opts.pool, async (client) => {
      await apply(client, opts, integration, runId, fetched.jobs, summary);
      await finish(client, nextMark);
    });
    log.info({ ...summary }, 'job import finished');
  } catch (err) {
    summary.status = 'failed';
    summary.opened = summary.updated = summary.closed = summary.unchanged = 0;
    const e = err as Partial<RelayError> & Error;
    summary.error = truncate(e.code ? `${e.code}: ${e.message}` : (e.message ?? String(err)));
    log.warn({ err: e.code ? (e as RelayError).toJSON?.() : { message: e.message }, pages: summary.pages }, 'job import failed');
    await finish(opts.pool, null).catch((writeErr: unknown) => log.error({ err: (writeErr as Error).message }, 'could not record the failed job import'));
  }
  return summary;
}

/** A run as `sync_logs` keeps it: the summary's counts, plus who started it and when. */
export interface SyncLogRow extends Omit<SyncSummary, 'runId' | 'status'> {
  /** The mark a succeeded run left for the next incremental run. */
  nextMark: string | null;
  id: string;
  trigger: SyncTrigger;
  status: SyncSummary['status'] | 'running';
  startedAt: string;
  finishedAt: string | null;
}

export async function listSyncRuns(pool: Pool, integrationId: string, limit = 50): Promise<SyncLogRow[]> {
  const { rows } = await pool.query<Record<string, unknown>>(
    `SELECT id, trigger, status, mode, full_reason, since_mark, next_mark, pages, fetched, opened, updated, closed, unchanged, rate_limited, error, started_at, finished_at
       FROM sync_logs WHERE integration_id = $1 ORDER BY started_at DESC LIMIT $2`,
    [integrationId, limit],
  );
  return rows.map((r) => ({
    id: r.id as string,
    trigger: r.trigger as SyncTrigger,
    status: r.status as SyncLogRow['status'],
    mode: r.mode as SyncMode,
    fullReason: r.full_reason as FullReason | null,
    sinceMark: r.since_mark as string | null,
    nextMark: r.next_mark as string | null,
    pages: r.pages as number,
    fetched: r.fetched as number,
    opened: r.opened as number,
    updated: r.updated as number,
    closed: r.closed as number,
    unchanged: r.unchanged as number,
    rateLimited: r.rate_limited as number,
    error: r.error as string | null,
    startedAt: (r.started_at as Date).toISOString(),
    finishedAt: (r.finished_at as Date | null)?.toISOString() ?? null,
  }));
}

/**
 * Mapping suggestions: for each of the job board's jobs, the imported open ATS job with the same
 * requisition code (exact, case-insensitive), else the same title (normalised), else none.
 * A suggestion is only a suggestion: mapping stays an explicit PUT / `map-job`.
 */
export async function suggestJobMappings(
  pool: Pool,
  integrationId: string,
  jobs: ReadonlyArray<{ jobId: string; title?: string; requisitionCode?: string }>,
): Promise<Array<{ jobId: string; externalJobId: string | null; matchedBy: 'requisition_code' | 'title' | null; title: string | null }>> {
  const { rows } = await pool.query<{ external_job_id: string; title: string; requisition_code: string | null }>(
    `SELECT external_job_id, title, requisition_code FROM ats_jobs WHERE integration_id = $1 AND status = 'open' ORDER BY external_job_id`,
    [integrationId],
  );
  const norm = (s: string): string => s.toLowerCase().replace(/[^a-z0-9]+/g, ' ').trim();
  return jobs.map((j) => {
    const byCode = j.requisitionCode ? rows.find((r) => r.requisition_code && r.requisition_code.toLowerCase() === j.requisitionCode!.toLowerCase()) : undefined;
    if (byCode) return { jobId: j.jobId, externalJobId: byCode.external_job_id, matchedBy: 'requisition_code', title: byCode.title };
    const byTitle = j.title ? rows.find((r) => norm(r.title) === norm(j.title!)) : undefined;
    if (byTitle) return { jobId: j.jobId, externalJobId: byTitle.external_job_id, matchedBy: 'title', title: byTitle.title };
    return { jobId: j.jobId, externalJobId: null, matchedBy: null, title: null };
  });
}
