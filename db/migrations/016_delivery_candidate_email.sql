-- Support engineers find a delivery by the candidate's e-mail. The delivery log keeps only a SHA-256
-- of the normalised address (trimmed, lower-cased): enough to look one up, not a copy of the
-- candidate's personal data.
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS candidate_email_sha256 bytea;
CREATE INDEX IF NOT EXISTS deliveries_candidate_email_idx ON deliveries (integration_id, candidate_email_sha256)
  WHERE candidate_email_sha256 IS NOT NULL;
