-- Lever now issues one signature token per webhook, and a webhook is registered per event type
-- (../shared/docs/ats-inbound.md §2.2): a customer with three Lever webhooks has three tokens, and with one
-- secret per integration two of the three event types were refused forever. A secret is now kept per
-- (integration, event). '' is the integration-wide secret: what every other vendor, and a Lever account that
-- still has one account-wide token, signs with; existing rows become exactly that.
ALTER TABLE webhook_secrets ADD COLUMN IF NOT EXISTS event text NOT NULL DEFAULT '';

-- The primary key moves from (integration_id) to (integration_id, event); only when it is still the old one,
-- so running this again (or after a restore) changes nothing.
DO $$
BEGIN
  IF EXISTS (
    SELECT 1 FROM pg_constraint
     WHERE conrelid = 'webhook_secrets'::regclass AND contype = 'p'
       AND conkey = ARRAY[(SELECT attnum FROM pg_attribute WHERE attrelid = 'webhook_secrets'::regclass AND attname = 'integration_id')]::smallint[]
  ) THEN
    ALTER TABLE webhook_secrets DROP CONSTRAINT webhook_secrets_pkey;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'webhook_secrets'::regclass AND contype = 'p') THEN
    ALTER TABLE webhook_secrets ADD CONSTRAINT webhook_secrets_pkey PRIMARY KEY (integration_id, event);
  END IF;
END $$;
