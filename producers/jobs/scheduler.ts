/**
 * Periodic job import (JOB_SYNC_INTERVAL_MS > 0) inside the API process: every interval, one run per
 * enabled integration that has a job listing, one after the other, each full or incremental as
 * job-import.ts decides from the integration's own history (the scheduler never forces). Several API processes may run it:
 * the per-integration advisory lock makes the second one skip (`sync_running`), so an integration is
 * never imported twice at once.
 */
import type { IntegrationRepository } from '../../registry/repository.ts';
import type { Logger } from '../../lib/logger.ts';
import { JobImportError, startJobImport, type JobImportOptions } from './job-import.ts';

export interface JobSyncScheduler {
  start(): void;
  /** Stop scheduling, abort the run in progress and wait until it is recorded (as failed: no mark written). Idempotent. */
  close(): Promise<void>;
}

export function createJobSyncScheduler(opts: Omit<JobImportOptions, 'signal'> & { repo: IntegrationRepository; intervalMs: number; logger: Logger }): JobSyncScheduler {
  const log = opts.logger.child({ component: 'job-sync-scheduler' });
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let round: Promise<void> | undefined;
  let closing: Promise<void> | undefined;

  async function runRound(): Promise<void> {
    const integrations = (await opts.repo.listIntegrations()).filter((i) => i.enabled && i.platform !== 'generic');
    for (const integration of integrations) {
      if (abort.signal.aborted) return;
      try {
        await (await startJobImport({ ...opts, signal: abort.signal }, integration, 'scheduler')).done;
      } catch (err) {
        if (err instanceof JobImportError && err.code === 'sync_running') continue; // another process has it
        log.warn({ integrationId: integration.id, err: (err as Error).message }, 'scheduled job import not started');
      }
    }
  }

  const tick = (): void => {
    round = runRound()
      .catch((err: unknown) => log.error({ err: (err as Error).message }, 'scheduled job import round failed'))
      .finally(() => {
        if (!abort.signal.aborted) timer = setTimeout(tick, opts.intervalMs);
      });
  };

  return {
    start() {
      if (timer || round) return;
      timer = setTimeout(tick, opts.intervalMs);
    },
    close() {
      closing ??= (async () => {
        abort.abort();
        clearTimeout(timer);
        await round;
      })();
      return closing;
    },
  };
}
