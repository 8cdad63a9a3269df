-- Web console sessions (api/console): an API token exchanged for a session cookie. Only the SHA-256 of the
-- cookie's value is stored; the session dies with its expiry, a sign-out, or the revocation of its token.
-- Queries live in api/console/sessions.ts.

CREATE TABLE IF NOT EXISTS console_sessions (
  id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  token_hash  bytea       NOT NULL UNIQUE,         -- SHA-256 of the cookie value
  token_id    uuid        NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL
);

CREATE INDEX IF NOT EXISTS console_sessions_expires_idx ON console_sessions (expires_at);
