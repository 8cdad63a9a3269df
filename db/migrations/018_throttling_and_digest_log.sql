-- Issue 18 (throttling shown apart from failures, long throttling alerted) and issue 12 (a digest
-- never reports a dead letter twice). Queries live in consumers/dispatcher/throttle-log.ts,
-- consumers/alerts/throttle-watch.ts and consumers/alerts/digest-log.ts.

-- One row per integration that was ever throttled, describing its latest episode: the dispatcher and
-- the retry tiers upsert it about once a second per process from what they deferred meanwhile (never
-- a row per record), and end the episode (ended_at) once the integration delivers after its last
-- deferral and after the last due time of its deferred records (nothing of it waits any more; a
-- burst drained at the ATS's pace stays one episode). A deferral newer than ended_at starts a new episode; an older one (flushed late by
-- another process) does not reopen it. No foreign key: a deleted integration must not make the
-- dispatcher's flush fail.
CREATE TABLE IF NOT EXISTS integration_throttling (
  integration_id      text        PRIMARY KEY,
  company_id          text        NOT NULL,
  platform            text        NOT NULL,
  throttled_since     timestamptz NOT NULL,            -- first deferral of this episode
  last_deferral_at    timestamptz NOT NULL,
  deferrals           bigint      NOT NULL,            -- deferrals in this episode (a record deferred twice counts twice)
  next_attempt_at     timestamptz,                     -- the earliest due time of a deferred record still ahead
  last_due_at         timestamptz NOT NULL,            -- the latest due time of the episode's deferred records
  alert_claimed_until timestamptz,                     -- an alerts process is e-mailing the episode's alert
  alerted_at          timestamptz,                     -- the episode's alert went out (once per episode)
  ended_at            timestamptz                      -- null while the episode lasts
);
CREATE INDEX IF NOT EXISTS integration_throttling_current_idx ON integration_throttling (throttled_since) WHERE ended_at IS NULL;

-- Digests the alert consumer e-mailed, or is e-mailing: written (claimed, with the rendered mails)
-- before the first SMTP send, marked sent after the last. A dead letter inside a range of any row
-- here is never counted again by the same consumer group.
CREATE TABLE IF NOT EXISTS alert_digests (
  id             text        PRIMARY KEY,              -- sha-256 of group and ranges: deterministic, also in each Message-ID
  consumer_group text        NOT NULL,
  records        integer     NOT NULL,
  claimed_by     text        NOT NULL,                 -- random per claim: a renewal or mark by a process that lost the claim does nothing
  claimed_at     timestamptz NOT NULL DEFAULT now(),
  claimed_until  timestamptz NOT NULL,                 -- renewed while its process sends; past it, another process sends
  sent_at        timestamptz
);
CREATE INDEX IF NOT EXISTS alert_digests_unsent_idx ON alert_digests (claimed_until) WHERE sent_at IS NULL;
CREATE INDEX IF NOT EXISTS alert_digests_claimed_idx ON alert_digests (claimed_at DESC);

-- The DLQ offsets each digest counted: one contiguous range per partition.
CREATE TABLE IF NOT EXISTS alert_digest_ranges (
  digest_id      text    NOT NULL REFERENCES alert_digests (id) ON DELETE CASCADE,
  consumer_group text    NOT NULL,
  topic          text    NOT NULL,
  partition      integer NOT NULL,
  first_offset   bigint  NOT NULL,
  last_offset    bigint  NOT NULL,
  PRIMARY KEY (digest_id, topic, partition)
);
CREATE INDEX IF NOT EXISTS alert_digest_ranges_coverage_idx ON alert_digest_ranges (consumer_group, topic, partition, last_offset DESC);

-- The mails of a digest, as rendered when it was claimed: a process that takes over an unsent
-- digest sends these very mails, with the same Message-IDs.
CREATE TABLE IF NOT EXISTS alert_digest_mails (
  digest_id  text        NOT NULL REFERENCES alert_digests (id) ON DELETE CASCADE,
  seq        integer     NOT NULL,
  audience   text        NOT NULL,                     -- 'ops' or 'company'
  recipients text[]      NOT NULL,
  subject    text        NOT NULL,
  body_text  text        NOT NULL,
  body_html  text        NOT NULL,
  message_id text        NOT NULL,
  sent_at    timestamptz,
  PRIMARY KEY (digest_id, seq)
);
