/**
 * The API-tokens aggregate: bearer tokens for the HTTP API and the console, each admin or scoped to
 * one company. A token is shown once; only its SHA-256 is stored.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Pool } from '../lib/db.ts';
import { isUuid } from './scope.ts';

export type TokenScope = { kind: 'admin' } | { kind: 'company'; companyId: string };

export interface ApiToken {
  id: string;
  name: string;
  scope: TokenScope;
  createdAt: Date;
}

export function formatTokenScope(scope: TokenScope): string {
  return scope.kind === 'admin' ? 'admin' : `company:${scope.companyId}`;
}

export function parseTokenScope(s: string): TokenScope | null {
  if (s === 'admin') return { kind: 'admin' };
  const m = /^company:(.+)$/.exec(s);
  return m ? { kind: 'company', companyId: m[1]! } : null;
}

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

export interface ApiTokenStore {
  /** The token is returned once and stored only as its SHA-256. */
  createApiToken(input: { name: string; scope: TokenScope }): Promise<ApiToken & { token: string }>;
  authenticateToken(token: string): Promise<ApiToken | null>;
  revokeApiToken(id: string): Promise<boolean>;
}

export function createApiTokenStore({ pool }: { pool: Pool }): ApiTokenStore {
  return {
    async createApiToken({ name, scope }) {
      const token = `atsr_${randomBytes(32).toString('base64url')}`;
      const { rows } = await pool.query<{ id: string; created_at: Date }>(
        'INSERT INTO api_tokens (token_hash, scope, name) VALUES ($1, $2, $3) RETURNING id, created_at',
        [hashToken(token), formatTokenScope(scope), name],
      );
      return { id: rows[0]!.id, name, scope, createdAt: rows[0]!.created_at, token };
    },

    async authenticateToken(token) {
      const { rows } = await pool.query<{ id: string; name: string; scope: string; created_at: Date }>(
        `UPDATE api_tokens SET last_used_at = now()
         WHERE token_hash = $1 AND revoked_at IS NULL
         RETURNING id, name, scope, created_at`,
        [hashToken(token)],
      );
      const row = rows[0];
      const scope = row ? parseTokenScope(row.scope) : null;
      return row && scope ? { id: row.id, name: row.name, scope, createdAt: row.created_at } : null;
    },

    async revokeApiToken(id) {
      if (!isUuid(id)) return false;
      const { rowCount } = await pool.query('UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL', [id]);
      return rowCount === 1;
    },
  };
}
