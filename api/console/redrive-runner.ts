/**
 * Redrives started from the console: the same `redrive()` the CLI runs, over the same DLQ source,
 * recorded in the same redrive_runs table. A dry run is awaited (its report is the answer); a real
 * run goes on in the background and its counts are kept here for the progress page until the
 * process ends (the history row has the final counts either way).
 */
import { randomUUID } from 'node:crypto';
import type { Config } from '../../lib/config.ts';
import type { Pool } from '../../lib/db.ts';
import { createProducer, type KafkaClient, type Producer } from '../../lib/kafka/index.ts';
import type { Logger } from '../../lib/logger.ts';
import type { EventCodec } from '../../lib/serde.ts';
import type { RedriveFilters } from '../../scripts/redrive/filters.ts';
import { createRedriveRuns, type RedriveRuns } from '../../scripts/redrive/history.ts';
import type { ProgressCounts } from '../../scripts/redrive/progress.ts';
import { DEFAULT_MAX_REDRIVES, redrive, type RedriveReport } from '../../scripts/redrive/redrive.ts';
import { createDlqSource } from '../../scripts/redrive/source-dlq.ts';

/** How long a finished run's live counts stay for its progress page (the history has them after). */
const KEEP_FINISHED_MS = 60 * 60_000;

export interface RunningRedrive {
  id: string;
  total: number;
  counts: ProgressCounts;
  report: RedriveReport | undefined;
  error: string | undefined;
}

export interface RedriveRunner {
  readonly runs: RedriveRuns;
  dryRun(filters: RedriveFilters, operator: string): Promise<RedriveReport>;
  /** Starts the run and returns its id at once; `progress(id)` follows it. */
  start(filters: RedriveFilters, operator: string): Promise<string>;
  progress(id: string): RunningRedrive | undefined;
  /** Interrupt running redrives (recorded as interrupted) and disconnect the producer. */
  close(): Promise<void>;
}

export interface RedriveRunnerDeps {
  config: Config;
  pool: Pool;
  kafka: () => KafkaClient;
  codec: () => EventCodec;
  log: Logger;
}

export function createRedriveRunner(deps: RedriveRunnerDeps): RedriveRunner {
  const runs = createRedriveRuns(deps.pool);
  const active = new Map<string, RunningRedrive>();
  const inFlight = new Set<Promise<unknown>>();
  const abort = new AbortController();
  let producer: Promise<Producer> | undefined;
  const logger = deps.log.child({ component: 'console-redrive' });

  function getProducer(): Promise<Producer> {
    producer ??= (async () => {
      const p = createProducer(deps.kafka());
      await p.connect();
      return p;
    })().catch((err: unknown) => {
      producer = undefined;
      throw err;
    });
    return producer;
  }

  async function run(filters: RedriveFilters, operator: string, dryRun: boolean, state?: RunningRedrive): Promise<RedriveReport> {
    const runId = state?.id ?? randomUUID();
    const source = createDlqSource({ kafka: deps.kafka(), topic: deps.config.topics.dlq, filters, groupId: `ats-relay.redrive.${runId}`, logger });
    try {
      return await redrive({
        runId,
        source,
        filters,
        targetTopic: deps.config.topics.applications,
        dryRun,
        maxRedrives: DEFAULT_MAX_REDRIVES,
        ratePerSecond: undefined,
        operator,
        codec: deps.codec(),
        producer: dryRun ? undefined : await getProducer(),
        runs,
        logger,
        signal: abort.signal,
        progress: (total) => {
          if (state) state.total = total;
          return {
            update: (c) => state && (state.counts = { ...c }),
            done: (c) => state && (state.counts = { ...c }),
          };
        },
        sampleSize: 10,
      });
    } finally {
      await source.close();
    }
  }

  return {
    runs,
    dryRun: (filters, operator) => run(filters, operator, true),
    async start(filters, operator) {
      await getProducer(); // Kafka unreachable: say so now, not on the progress page
      const state: RunningRedrive = { id: randomUUID(), total: 0, counts: { scanned: 0, matched: 0, produced: 0, refused: 0 }, report: undefined, error: undefined };
      active.set(state.id, state);
      const p = run(filters, operator, false, state).then(
        (report) => {
          state.report = report;
        },
        (err: unknown) => {
          state.error = (err as Error).message ?? String(err);
          logger.warn({ err, redriveId: state.id }, 'console redrive failed');
        },
      );
      inFlight.add(p);
      // The progress page needs a finished run's live state only briefly; the history row stays.
      void p.finally(() => {
        inFlight.delete(p);
        setTimeout(() => active.delete(state.id), KEEP_FINISHED_MS).unref();
      });
      return state.id;
    },
    progress: (id) => active.get(id),
    async close() {
      abort.abort();
      await Promise.allSettled([...inFlight]);
      const p = producer;
      producer = undefined;
      if (p) await p.then((x) => x.disconnect()).catch(() => undefined);
    },
  };
}
