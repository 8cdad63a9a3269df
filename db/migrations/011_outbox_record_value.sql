-- An outbox row may carry its Kafka record value ready to send: Confluent-framed Avro, written by
-- enqueueApplication when its codec already knows the schema id. The relay then sends those bytes as they are
-- (no JSON to parse, nothing to encode), and the row is smaller to insert. A row without it keeps the JSON
-- payload and the relay encodes it, so an enqueue never waits on the Schema Registry.
ALTER TABLE outbox ALTER COLUMN payload DROP NOT NULL;
ALTER TABLE outbox ADD COLUMN value bytea;
ALTER TABLE outbox ADD CONSTRAINT outbox_value_or_payload CHECK (value IS NOT NULL OR payload IS NOT NULL);
