/**
 * Console sessions (db/migrations/015_console_sessions.sql): an API token, checked once at sign-in,
 * is exchanged for a random session value sent as an HttpOnly cookie. Only its SHA-256 is stored.
 * A session is valid until it expires, is signed out, or its API token is revoked, whichever is
 * first; the scope is the token's own, so the console sees exactly what the REST API would.
 */
import { randomBytes } from 'node:crypto';
import type { Pool } from '../../lib/db.ts';
import { hashToken, parseTokenScope, type TokenScope } from '../../registry/api-tokens.ts';

export interface ConsoleSession {
  id: string;
  scope: TokenScope;
  /** The API token's name: shown in the header and recorded as who started a redrive. */
  tokenName: string;
  expiresAt: Date;
}

export interface ConsoleSessions {
  /** A new session for the token; the returned value goes into the cookie and is not stored. */
  create(tokenId: string, ttlMs: number): Promise<{ value: string; expiresAt: Date }>;
  find(value: string): Promise<ConsoleSession | null>;
  delete(value: string): Promise<void>;
}

export function createConsoleSessions(pool: Pool): ConsoleSessions {
  return {
    async create(tokenId, ttlMs) {
      const value = randomBytes(32).toString('base64url');
      // Expired rows are removed on the way: sign-ins are rare enough for this to cost nothing.
      await pool.query('DELETE FROM console_sessions WHERE expires_at < now()');
      const { rows } = await pool.query<{ expires_at: Date }>(
        `INSERT INTO console_sessions (token_hash, token_id, expires_at)
         VALUES ($1, $2, now() + $3::bigint * interval '1 millisecond') RETURNING expires_at`,
        [hashToken(value), tokenId, ttlMs],
      );
      return { value, expiresAt: rows[0]!.expires_at };
    },
    async find(value) {
      if (!value || value.length > 200) return null;
      const { rows } = await pool.query<{ id: string; scope: string; name: string; expires_at: Date }>(
        `SELECT s.id, t.scope, t.name, s.expires_at FROM console_sessions s JOIN api_tokens t ON t.id = s.token_id
         WHERE s.token_hash = $1 AND s.expires_at > now() AND t.revoked_at IS NULL`,
        [hashToken(value)],
      );
      const row = rows[0];
      const scope = row ? parseTokenScope(row.scope) : null;
      return row && scope ? { id: row.id, scope, tokenName: row.name, expiresAt: row.expires_at } : null;
    },
    async delete(value) {
      await pool.query('DELETE FROM console_sessions WHERE token_hash = $1', [hashToken(value)]);
    },
  };
}
