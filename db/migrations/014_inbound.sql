-- The way back from the ATS: inbound webhooks (verified, deduplicated, turned into ApplicationStatusChanged
-- outbox rows in the same transaction) and job import (the ATS's jobs, each run's log).

-- Each integration's webhook secret, sealed like its credentials (AES-256-GCM, integration id as AAD).
-- Workable signs with the account's API token instead, so a Workable integration needs no row here.
CREATE TABLE IF NOT EXISTS webhook_secrets (
  integration_id    uuid        PRIMARY KEY REFERENCES integrations (id) ON DELETE CASCADE,
  secret_ciphertext bytea       NOT NULL,
  secret_key_id     text        NOT NULL,
  created_at        timestamptz NOT NULL DEFAULT now(),
  rotated_at        timestamptz NOT NULL DEFAULT now()
);

-- Every verified webhook, once: the unique dedupe key (the vendor's event id, or the hash of the signed body
-- where the vendor sends none) makes a vendor's retry a no-op. No body is kept here (it carries candidate
-- data); the outcome says what became of it.
CREATE TABLE IF NOT EXISTS inbound_webhooks (
  id                      bigserial   PRIMARY KEY,
  integration_id          uuid        NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
  dedupe_key              text        NOT NULL,
  vendor_event            text        NOT NULL,
  outcome                 text        NOT NULL
                          CONSTRAINT inbound_webhooks_outcome_check
                          CHECK (outcome IN ('published', 'unmatched', 'ignored', 'superseded')),
  application_id          text,
  external_application_id text,
  status                  text,
  raw_stage               text,
  event_id                uuid,
  occurred_at             timestamptz,
  received_at             timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT inbound_webhooks_dedupe_key UNIQUE (integration_id, dedupe_key)
);
-- Out-of-order deliveries: the newest status event already published for an application.
CREATE INDEX IF NOT EXISTS inbound_webhooks_application_idx ON inbound_webhooks (integration_id, application_id, occurred_at DESC)
  WHERE outcome = 'published';

-- A status webhook about a candidate/application we never delivered: kept for inspection, not dropped.
CREATE TABLE IF NOT EXISTS inbound_unmatched (
  id                      bigserial   PRIMARY KEY,
  inbound_id              bigint      NOT NULL REFERENCES inbound_webhooks (id) ON DELETE CASCADE,
  integration_id          uuid        NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
  vendor_event            text        NOT NULL,
  external_candidate_id   text,
  external_application_id text,
  status                  text,
  raw_stage               text,
  payload                 jsonb       NOT NULL,
  received_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS inbound_unmatched_integration_idx ON inbound_unmatched (integration_id, received_at DESC);

-- Webhooks name the ATS's ids; the delivery log maps them back to our application id.
CREATE INDEX IF NOT EXISTS deliveries_external_application_idx ON deliveries (integration_id, external_application_id);
CREATE INDEX IF NOT EXISTS deliveries_external_candidate_idx ON deliveries (integration_id, external_candidate_id);

-- The jobs each ATS lists, as of the last import. content_hash = what a JobSynced "updated" compares.
CREATE TABLE IF NOT EXISTS ats_jobs (
  integration_id   uuid        NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
  external_job_id  text        NOT NULL,
  title            text        NOT NULL,
  requisition_code text,
  location         text,
  status           text        NOT NULL CONSTRAINT ats_jobs_status_check CHECK (status IN ('open', 'closed')),
  vendor_updated_at text,
  content_hash     text        NOT NULL,
  first_seen_at    timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  closed_at        timestamptz,
  PRIMARY KEY (integration_id, external_job_id)
);

-- One row per import run (CLI, API or scheduler) with its counts and error.
CREATE TABLE IF NOT EXISTS sync_logs (
  id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  integration_id uuid      NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
  kind         text        NOT NULL DEFAULT 'jobs',
  trigger      text        NOT NULL CONSTRAINT sync_logs_trigger_check CHECK (trigger IN ('cli', 'api', 'scheduler')),
  status       text        NOT NULL CONSTRAINT sync_logs_status_check CHECK (status IN ('running', 'succeeded', 'failed')),
  pages        integer     NOT NULL DEFAULT 0,
  fetched      integer     NOT NULL DEFAULT 0,
  opened       integer     NOT NULL DEFAULT 0,
  updated      integer     NOT NULL DEFAULT 0,
  closed       integer     NOT NULL DEFAULT 0,
  unchanged    integer     NOT NULL DEFAULT 0,
  rate_limited integer     NOT NULL DEFAULT 0,
  error        text,
  started_at   timestamptz NOT NULL DEFAULT now(),
  finished_at  timestamptz
);
CREATE INDEX IF NOT EXISTS sync_logs_integration_idx ON sync_logs (integration_id, started_at DESC);
