-- Transactional outbox: the backend writes an event row in its own transaction (producers/outbox/enqueue.ts);
-- outbox relays (npm run outbox-relay) publish pending rows in id order and mark them sent.
-- The payload is the validated, enriched ApplicationSubmitted as JSON (no secrets); Avro encoding happens in
-- the relay, so the schema evolves with the code, not with rows already written.

CREATE TABLE IF NOT EXISTS outbox (
  id          bigserial   PRIMARY KEY,            -- publish order
  event_id    uuid        NOT NULL,
  topic       text        NOT NULL,
  key         text        NOT NULL,               -- record key (application id)
  payload     jsonb       NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  sent_at     timestamptz,
  attempts    integer     NOT NULL DEFAULT 0,     -- failed publish attempts
  last_error  text,
  failed_at   timestamptz                         -- set when the row can never be published (payload does not
                                                  -- encode); kept for an operator, skipped by relays
);

-- Relays scan pending rows in id order; the partial index stays as small as the backlog.
CREATE INDEX IF NOT EXISTS outbox_pending_idx ON outbox (id) WHERE sent_at IS NULL AND failed_at IS NULL;
-- Pruning deletes sent rows older than the retention period.
CREATE INDEX IF NOT EXISTS outbox_sent_idx ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- One NOTIFY per inserting statement (not per row) wakes the relays; they poll as a fallback.
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('ats_relay_outbox', '');
  RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS outbox_notify ON outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
