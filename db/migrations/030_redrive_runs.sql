-- Redrive runs (npm run redrive): who sent which dead letters back, when, with which filters, and what came of it.
-- A row is written when a run starts (status 'running') and completed when it ends, so a run that crashed
-- stays visible. Queries live in scripts/redrive/history.ts.

CREATE TABLE IF NOT EXISTS redrive_runs (
  id            uuid        PRIMARY KEY,          -- the redrive id, also sent as header ats-redrive-id
  started_at    timestamptz NOT NULL DEFAULT now(),
  finished_at   timestamptz,
  operator      text        NOT NULL,             -- --operator, else the OS user name
  source        text        NOT NULL,             -- 'dlq:<topic>' or 's3://<bucket>/<prefix>'
  filters       jsonb       NOT NULL,
  dry_run       boolean     NOT NULL,
  target_topic  text        NOT NULL,
  max_redrives  integer     NOT NULL,
  rate_per_sec  double precision,                 -- null = no cap
  scanned       integer     NOT NULL DEFAULT 0,   -- records read from the source
  matched       integer     NOT NULL DEFAULT 0,   -- records the filters selected
  produced      integer     NOT NULL DEFAULT 0,   -- records sent to the target (0 on a dry run)
  refused       integer     NOT NULL DEFAULT 0,   -- matched but redriven too often already (loop guard)
  skipped       integer     NOT NULL DEFAULT 0,   -- read but not selected by the filters
  status        text        NOT NULL DEFAULT 'running'
                            CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
  error         text
);

CREATE INDEX IF NOT EXISTS redrive_runs_started_idx ON redrive_runs (started_at DESC);
