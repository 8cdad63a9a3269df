/**
 * The redrive_runs table (db/migrations/030_redrive_runs.sql): every run, dry or not, is written
 * when it starts and completed when it ends. All SQL for the table is here.
 */
import type { Pool } from '../../lib/db.ts';

export type RunStatus = 'running' | 'succeeded' | 'failed' | 'interrupted';

export interface RunStart {
  id: string;
  operator: string;
  source: string;
  filters: Record<string, unknown>;
  dryRun: boolean;
  targetTopic: string;
  maxRedrives: number;
  ratePerSecond: number | undefined;
}

export interface RunCounts {
  scanned: number;
  matched: number;
  produced: number;
  refused: number;
  skipped: number;
}

export interface RedriveRun extends RunStart, RunCounts {
  startedAt: Date;
  finishedAt: Date | null;
  status: RunStatus;
  error: string | null;
}

interface Row {
  id: string;
  started_at: Date;
  finished_at: Date | null;
  operator: string;
  source: string;
  filters: Record<string, unknown>;
  dry_run: boolean;
  target_topic: string;
  max_redrives: number;
  rate_per_sec: number | null;
  scanned: number;
  matched: number;
  produced: number;
  refused: number;
  skipped: number;
  status: RunStatus;
  error: string | null;
}

function fromRow(r: Row): RedriveRun {
  return {
    id: r.id,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    operator: r.operator,
    source: r.source,
    filters: r.filters,
    dryRun: r.dry_run,
    targetTopic: r.target_topic,
    maxRedrives: r.max_redrives,
    ratePerSecond: r.rate_per_sec ?? undefined,
    scanned: r.scanned,
    matched: r.matched,
    produced: r.produced,
    refused: r.refused,
    skipped: r.skipped,
    status: r.status,
    error: r.error,
  };
}

export interface RedriveRuns {
  start(run: RunStart): Promise<void>;
  finish(id: string, outcome: RunCounts & { status: Exclude<RunStatus, 'running'>; error?: string | undefined }): Promise<void>;
  get(id: string): Promise<RedriveRun | null>;
  /** Newest first. */
  list(limit: number): Promise<RedriveRun[]>;
}

export function createRedriveRuns(pool: Pool): RedriveRuns {
  return {
    async start(run) {
      await pool.query(
        `INSERT INTO redrive_runs (id, operator, source, filters, dry_run, target_topic, max_redrives, rate_per_sec)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [run.id, run.operator, run.source, JSON.stringify(run.filters), run.dryRun, run.targetTopic, run.maxRedrives, run.ratePerSecond ?? null],
      );
    },
    async finish(id, o) {
      await pool.query(
        `UPDATE redrive_runs
            SET finished_at = now(), status = $2, error = $3,
                scanned = $4, matched = $5, produced = $6, refused = $7, skipped = $8
          WHERE id = $1`,
        [id, o.status, o.error ?? null, o.scanned, o.matched, o.produced, o.refused, o.skipped],
      );
    },
    async get(id) {
      const { rows } = await pool.query<Row>('SELECT * FROM redrive_runs WHERE id = $1', [id]);
      return rows[0] ? fromRow(rows[0]) : null;
    },
    async list(limit) {
      const { rows } = await pool.query<Row>('SELECT * FROM redrive_runs ORDER BY started_at DESC, id LIMIT $1', [limit]);
      return rows.map(fromRow);
    },
  };
}
