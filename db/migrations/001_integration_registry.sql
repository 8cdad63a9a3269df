-- Integration registry: each customer's ATS configuration, job mappings, the delivery log and API tokens.
-- Applied once by db/migrate.ts; written with IF NOT EXISTS so a re-run is harmless too.

CREATE TABLE IF NOT EXISTS integrations (
  id                     uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id             text        NOT NULL,
  platform               text        NOT NULL
                         CONSTRAINT integrations_platform_check
                         CHECK (platform IN ('greenhouse', 'lever', 'workable', 'ashby', 'generic')),
  name                   text        NOT NULL,
  -- AES-256-GCM: iv (12 bytes) | tag (16 bytes) | ciphertext of the credentials JSON; the integration id is
  -- the additional authenticated data, so a ciphertext copied to another row does not decrypt.
  -- NULL only after a delete (credentials are shredded, the row stays for the delivery log).
  credentials_ciphertext bytea,
  credentials_key_id     text,
  api_base_url           text,
  settings               jsonb       NOT NULL DEFAULT '{}'::jsonb,
  enabled                boolean     NOT NULL DEFAULT true,
  allow_missing_resume   boolean     NOT NULL DEFAULT false,
  version                integer     NOT NULL DEFAULT 1,
  created_at             timestamptz NOT NULL DEFAULT now(),
  updated_at             timestamptz NOT NULL DEFAULT now(),
  deleted_at             timestamptz,
  last_delivery_at       timestamptz,
  last_error             text,
  last_error_at          timestamptz,
  CONSTRAINT integrations_credentials_present
    CHECK (deleted_at IS NOT NULL OR (credentials_ciphertext IS NOT NULL AND credentials_key_id IS NOT NULL))
);

CREATE INDEX IF NOT EXISTS integrations_company_idx ON integrations (company_id, created_at) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS integrations_key_id_idx ON integrations (credentials_key_id) WHERE deleted_at IS NULL;

CREATE TABLE IF NOT EXISTS job_mappings (
  integration_id  uuid        NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
  job_id          text        NOT NULL,
  external_job_id text        NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (integration_id, job_id)
);

CREATE TABLE IF NOT EXISTS deliveries (
  id                      uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  integration_id          uuid        NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
  application_id          text        NOT NULL,
  event_id                text        NOT NULL,
  status                  text        NOT NULL
                          CONSTRAINT deliveries_status_check
                          CHECK (status IN ('pending', 'delivered', 'retrying', 'dead_lettered')),
  try_count               integer     NOT NULL DEFAULT 0,
  error_code              text,
  error_message           text,
  error_status            integer,
  external_candidate_id   text,
  external_application_id text,
  first_attempt_at        timestamptz,
  last_attempt_at         timestamptz,
  delivered_at            timestamptz,
  created_at              timestamptz NOT NULL DEFAULT now(),
  updated_at              timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT deliveries_integration_application_key UNIQUE (integration_id, application_id)
);

-- The delivery log is read newest first, optionally by status, with (created_at, id) cursors.
CREATE INDEX IF NOT EXISTS deliveries_log_idx ON deliveries (integration_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS deliveries_status_idx ON deliveries (integration_id, status, created_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS api_tokens (
  id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  -- SHA-256 of the token; the token itself is shown once at creation and never stored.
  token_hash   bytea       NOT NULL UNIQUE,
  scope        text        NOT NULL
               CONSTRAINT api_tokens_scope_check
               CHECK (scope = 'admin' OR scope ~ '^company:.+$'),
  name         text        NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  revoked_at   timestamptz
);
