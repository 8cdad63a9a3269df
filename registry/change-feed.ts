/**
 * The registry's change notifications, for its caches (cache.ts for the consumers, the direct
 * publisher's target cache): every registry write NOTIFYs CHANGE_CHANNEL with the integration id,
 * and a feed LISTENs on one dedicated connection from the pool. A lost connection is a gap (changes
 * may have gone unseen): the owner hears `onGap`, and the feed subscribes again after a delay.
 */
import type { Pool, PoolClient } from '../lib/db.ts';
import { CHANGE_CHANNEL } from './integrations.ts';

export interface ChangeFeedOptions {
  pool: Pool;
  /** A registry write: the integration id ('' if a notification carried none). */
  onChange(integrationId: string): void;
  /** Subscribed anew, or the subscription was lost: anything cached may have changed unseen. */
  onGap(): void;
  onLost?(err: Error): void;
  /** Delay before subscribing again after the connection dropped (default 1 s). */
  reconnectDelayMs?: number;
}

export interface ChangeFeed {
  /** Resolves once listening. */
  start(): Promise<void>;
  /** True while notifications are being received (a cache may trust its entries). */
  readonly listening: boolean;
  close(): Promise<void>;
}

export function createChangeFeed(opts: ChangeFeedOptions): ChangeFeed {
  const reconnectDelayMs = opts.reconnectDelayMs ?? 1_000;
  let client: PoolClient | undefined;
  let closed = false;
  let closing: Promise<void> | undefined;
  let reconnectTimer: NodeJS.Timeout | undefined;

  async function subscribe(): Promise<void> {
    if (closed) return;
    const c = await opts.pool.connect();
    c.on('notification', (msg) => {
      if (msg.channel === CHANGE_CHANNEL) opts.onChange(msg.payload ?? '');
    });
    c.on('error', (err) => {
      opts.onLost?.(err);
      if (client === c) client = undefined;
      opts.onGap();
      c.release(true);
      scheduleRetry();
    });
    try {
      await c.query(`LISTEN ${CHANGE_CHANNEL}`);
    } catch (err) {
      c.release(true);
      throw err;
    }
    opts.onGap();
    client = c;
  }

  function scheduleRetry(): void {
    if (closed) return;
    reconnectTimer = setTimeout(() => void subscribe().catch(() => scheduleRetry()), reconnectDelayMs);
    reconnectTimer.unref();
  }

  return {
    start: subscribe,
    get listening() {
      return client !== undefined;
    },
    close() {
      return (closing ??= (async () => {
        closed = true;
        if (reconnectTimer) clearTimeout(reconnectTimer);
        const c = client;
        client = undefined;
        if (c) {
          try {
            await c.query(`UNLISTEN ${CHANGE_CHANNEL}`);
            c.release();
          } catch {
            c.release(true);
          }
        }
      })());
    },
  };
}
