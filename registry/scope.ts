/**
 * Tenant isolation for every registry statement: reads and writes take an optional `scope`; with a
 * companyId, another company's rows simply do not exist (null / not_found), whatever the id.
 */
import type { Pool } from '../lib/db.ts';

/** Restricts a call to one company; omit (or leave companyId undefined) for admin access. */
export interface Scope {
  companyId?: string | undefined;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Ids are uuid columns: anything else is "not there", never a database error. */
export function isUuid(s: string): boolean {
  return UUID.test(s);
}

/** `AND company_id = $n` when scoped; pushes the parameter. */
export function scopeClause(scope: Scope | undefined, params: unknown[], column = 'company_id'): string {
  if (scope?.companyId === undefined) return '';
  params.push(scope.companyId);
  return ` AND ${column} = $${params.length}`;
}

/** Whether the integration exists (and is visible in the scope). */
export async function integrationVisible(pool: Pool, id: string, scope?: Scope): Promise<boolean> {
  if (!isUuid(id)) return false;
  const params: unknown[] = [id];
  const { rowCount } = await pool.query(`SELECT 1 FROM integrations WHERE id = $1 AND deleted_at IS NULL${scopeClause(scope, params)}`, params);
  return rowCount === 1;
}
