-- One live delivery per application (issue 18). Two copies of one event can be in flight in two
-- consumer groups (a tier copy, and the original replayed after a crash before its offset was
-- committed). These two tables keep them from reaching the ATS twice; queries live in
-- consumers/dispatcher/delivery-claims.ts.

-- Held while a process calls the ATS for one (integration, application); a dead holder's lease
-- expires. No foreign key: a lease outlives nothing, and deleting an integration must not wait on it.
CREATE TABLE IF NOT EXISTS delivery_leases (
  integration_id text        NOT NULL,
  application_id text        NOT NULL,
  holder         text        NOT NULL,   -- random per attempt
  expires_at     timestamptz NOT NULL,
  PRIMARY KEY (integration_id, application_id)
);

-- A record a consumer group routed onward (to a retry tier, a deferral tier or the DLQ): when the
-- same record is consumed again (crash before the offset commit), it is acknowledged without a call.
-- Rows of an application go when it is delivered; what the DLQ received stays until pruned by age.
CREATE TABLE IF NOT EXISTS delivery_routes (
  consumer_group text        NOT NULL,
  topic          text        NOT NULL,
  partition      integer     NOT NULL,
  record_offset  bigint      NOT NULL,
  integration_id text,                  -- null when the record did not decode
  application_id text,
  routed_to      text        NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (topic, partition, record_offset, consumer_group)
);
CREATE INDEX IF NOT EXISTS delivery_routes_application_idx ON delivery_routes (integration_id, application_id);
CREATE INDEX IF NOT EXISTS delivery_routes_created_idx ON delivery_routes (created_at);
