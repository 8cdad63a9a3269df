-- Incremental job import (#14): each run says whether it read the whole open listing or only the
-- changes since a mark, and which mark it reached. The next run's mark is read from the newest
-- succeeded run, so a failed or interrupted run (next_mark stays NULL) never advances it.
ALTER TABLE sync_logs ADD COLUMN IF NOT EXISTS mode text NOT NULL DEFAULT 'full'
  CONSTRAINT sync_logs_mode_check CHECK (mode IN ('full', 'incremental'));
-- Why a run was full (first, forced, periodic, max_age, no_mark, mark_refused); NULL for an incremental run.
ALTER TABLE sync_logs ADD COLUMN IF NOT EXISTS full_reason text;
-- What an incremental run asked the vendor for: an ISO-8601 instant (overlap subtracted) or Ashby's syncToken.
ALTER TABLE sync_logs ADD COLUMN IF NOT EXISTS since_mark text;
-- The high-water mark a succeeded run leaves for the next incremental run (the run's start, or Ashby's syncToken).
ALTER TABLE sync_logs ADD COLUMN IF NOT EXISTS next_mark text;
-- The mode decision reads the newest succeeded runs of one integration.
CREATE INDEX IF NOT EXISTS sync_logs_succeeded_idx ON sync_logs (integration_id, started_at DESC) WHERE status = 'succeeded';
