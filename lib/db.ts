/**
 * PostgreSQL pool factory: one pool per process, closed at shutdown. Queries live in the modules
 * that own the tables (registry/ per aggregate, consumers/dispatcher/delivery-store.ts for the delivery log).
 */
import pg from 'pg';
import type { Config } from './config.ts';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

export interface PoolOptions {
  /** Upper bound of connections held by this process. */
  max?: number;
  /** Abort a statement that runs longer than this (server side). */
  statementTimeoutMs?: number;
  /** Name shown in pg_stat_activity. */
  applicationName?: string;
}

export function createPool(database: Config['database'], opts: PoolOptions = {}): Pool {
  const pool = new pg.Pool({
    connectionString: database.url,
    max: opts.max ?? 10,
    statement_timeout: opts.statementTimeoutMs ?? 30_000,
    application_name: opts.applicationName ?? 'ats-relay',
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: 10_000,
  });
  // An idle client losing its connection must not crash the process; the next query reconnects.
  pool.on('error', () => undefined);
  // Nor a checked-out one: the pool listens for errors only while a client is idle or inside
  // pool.query, and a backend terminated at another moment (pg_terminate_backend, a failover) would
  // emit an unhandled 'error' and kill the process (seen in the chaos suite). The query that was
  // running still rejects, and the broken client is discarded when it is released.
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

/** Run `fn` in one transaction on a client of its own: committed when it resolves, rolled back when it throws. */
export async function inTransaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
