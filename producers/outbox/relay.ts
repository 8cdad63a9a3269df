/**
 * The read side of the transactional outbox: publishes pending rows in id order and marks them sent.
 *
 * One batch = one transaction: claim up to `batchSize` pending rows `FOR UPDATE SKIP LOCKED` (other
 * relays skip them), encode, send (idempotent producer, acks=all), mark them sent, commit. A crash
 * anywhere before the commit rolls the claim back and another relay (or this one, restarted) sends the
 * rows again: at-least-once, and the event id lets consumers drop the duplicates.
 *
 * Order: one relay sends batches one after the other, rows in id order, so events of one key keep
 * their order. With several relays, two pending rows of the same key could land in batches of
 * different relays; since the backend writes one event per application and integration, that only
 * concerns re-enqueued duplicates (same event id).
 *
 * Woken by NOTIFY on insert (a dedicated LISTEN connection that reconnects), with polling as the
 * fallback; drains without waiting while batches come back full. Sent rows are pruned after
 * `retentionMs`. Rows written with their record value are sent as they are; rows with a JSON payload
 * are encoded here, and one whose payload can never be encoded is set aside (`failed_at`) instead of
 * blocking the rows behind it.
 */
import pg from 'pg';
import type { Pool, PoolClient } from '../../lib/db.ts';
import { RelayError, truncate } from '../../lib/errors.ts';
import { ACKS_ALL, kafkaError, type OutboundRecord, type Producer } from '../../lib/kafka/index.ts';
import type { Logger } from '../../lib/logger.ts';
import { messageBytes } from '../../lib/send-batcher.ts';
import type { EventCodec } from '../../lib/serde.ts';
import { EVENT_ID_HEADER } from '../publisher.ts';
import { OUTBOX_CHANNEL } from './enqueue.ts';
import { DEFAULT_RELAY_TUNING, type RelayTuning } from './options.ts';

export interface OutboxRelayOptions extends Partial<RelayTuning> {
  /** Claims and marks rows; one connection per batch in flight. */
  pool: Pool;
  /** For the LISTEN connection (a pooled client cannot hold LISTEN). */
  databaseUrl: string;
  /** Connected by the caller, who disconnects it after `close()`. */
  producer: Producer;
  /** The codec of a topic (rows carry their topic; the subject is `<topic>-value`). */
  codecFor(topic: string): EventCodec<unknown>;
  /** Relay only rows of these topics (a relay per topic, or tests sharing a database); default: all. */
  topics?: readonly string[];
  logger: Logger;
  /** Called after each committed batch (benchmarks, metrics). */
  onBatch?(batch: { rows: number; failed: number; ms: number }): void;
}

export interface RelayStats {
  published: number;
  batches: number;
  failedRows: number;
  errors: number;
  pruned: number;
  /** The last batch failed (Kafka or PostgreSQL unreachable) and none has been sent since: rows wait. */
  failing: boolean;
}

export interface OutboxRelay {
  start(): Promise<void>;
  /** Stop claiming, finish the batch in flight (send + mark sent), close the LISTEN connection. Idempotent. */
  close(): Promise<void>;
  stats(): RelayStats;
}

interface OutboxRow {
  id: string;
  event_id: string;
  topic: string;
  key: string;
  /** The record value, encoded at enqueue; null when the row carries the JSON payload instead. */
  value: Buffer | null;
  payload: unknown;
}

export function createOutboxRelay(opts: OutboxRelayOptions): OutboxRelay {
  const tuning: RelayTuning = {
    batchSize: opts.batchSize ?? DEFAULT_RELAY_TUNING.batchSize,
    maxSendBytes: opts.maxSendBytes ?? DEFAULT_RELAY_TUNING.maxSendBytes,
    pollIntervalMs: opts.pollIntervalMs ?? DEFAULT_RELAY_TUNING.pollIntervalMs,
    retentionMs: opts.retentionMs ?? DEFAULT_RELAY_TUNING.retentionMs,
    pruneIntervalMs: opts.pruneIntervalMs ?? DEFAULT_RELAY_TUNING.pruneIntervalMs,
    maxBackoffMs: opts.maxBackoffMs ?? DEFAULT_RELAY_TUNING.maxBackoffMs,
    pipelineDepth: Math.max(1, opts.pipelineDepth ?? DEFAULT_RELAY_TUNING.pipelineDepth),
  };
  const logger = opts.logger.child({ component: 'outbox-relay' });
  const stats: RelayStats = { published: 0, batches: 0, failedRows: 0, errors: 0, pruned: 0, failing: false };

  let stopping = false;
  let running: Promise<void> | undefined;
  let closing: Promise<void> | undefined;

  // --- waking: NOTIFY, the poll timer, or close() -------------------------------------------------

  let notified = false;
  let wakeSleeper: (() => void) | undefined;
  const wake = (): void => {
    notified = true;
    wakeSleeper?.();
  };
  /**
   * Resolve after `ms`, or at once on close(). With `untilNotified`, also when a notification arrives
   * (or arrived since the last sleep); a backoff after a failure ignores notifications.
   */
  function sleep(ms: number, untilNotified: boolean): Promise<void> {
    if (stopping || (untilNotified && notified)) {
      notified = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        wakeSleeper = undefined;
        if (untilNotified) notified = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      wakeSleeper = untilNotified ? done : undefined;
      stopSleeper = done;
    });
  }
  let stopSleeper: (() => void) | undefined;

  let listener: pg.Client | undefined;
  let reconnectTimer: NodeJS.Timeout | undefined;
  async function listen(): Promise<void> {
    const client = new pg.Client({ connectionString: opts.databaseUrl, application_name: 'ats-relay-outbox-listen' });
    const retry = (err?: Error): void => {
      if (listener !== client) return;
      listener = undefined;
      client.removeAllListeners();
      client.on('error', () => undefined);
      void client.end().catch(() => undefined);
      if (stopping) return;
      logger.warn({ err: err?.message }, 'LISTEN connection lost; polling until it is back');
      reconnectTimer = setTimeout(() => void listen().catch(() => undefined), tuning.pollIntervalMs);
    };
    listener = client;
    client.on('notification', wake);
    client.on('error', retry);
    client.on('end', () => retry());
    try {
      await client.connect();
      await client.query(`LISTEN ${OUTBOX_CHANNEL}`);
    } catch (err) {
      retry(err as Error);
    }
  }

  // --- one batch ----------------------------------------------------------------------------------

  /**
   * The claim as one simple-protocol round trip (BEGIN, settings, SELECT): the relay's throughput is
   * bound by how fast it can claim while the previous batch is on the wire, so no second round trip.
   * Hence literals instead of parameters; both are ours (a number, escaped topic names).
   *
   * Walk the pending index in id order: a bursty outbox has stale statistics, and the planner then
   * prefers a bitmap scan of every pending row plus a sort (tens of ms per batch, growing).
   * synchronous_commit off: a mark lost in a database crash only means the rows are sent again
   * (at-least-once either way), and the commit no longer waits for the WAL flush.
   */
  const claimHead = `BEGIN; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off; SET LOCAL synchronous_commit = off;
    SELECT id, event_id, topic, key, value, payload FROM outbox
     WHERE sent_at IS NULL AND failed_at IS NULL${opts.topics ? ` AND topic = ANY(ARRAY[${opts.topics.map((t) => pg.escapeLiteral(t)).join(', ')}]::text[])` : ''}`;
  const claimTail = `ORDER BY id LIMIT ${Math.trunc(tuning.batchSize)} FOR UPDATE SKIP LOCKED`;

  /** Messages in row order, split so that no send exceeds maxSendBytes. */
  function chunk(messages: Array<{ topic: string; message: OutboundRecord }>): Array<Array<{ topic: string; messages: OutboundRecord[] }>> {
    const sends: Array<Array<{ topic: string; messages: OutboundRecord[] }>> = [];
    let current: Array<{ topic: string; messages: OutboundRecord[] }> = [];
    let bytes = 0;
    for (const { topic, message } of messages) {
      const size = messageBytes(message);
      if (bytes + size > tuning.maxSendBytes && bytes > 0) {
        sends.push(current);
        current = [];
        bytes = 0;
      }
      const last = current[current.length - 1];
      if (last?.topic === topic) last.messages.push(message);
      else current.push({ topic, messages: [message] });
      bytes += size;
    }
    if (current.length) sends.push(current);
    return sends;
  }

  async function encodeRows(client: PoolClient, rows: OutboxRow[]): Promise<{ messages: Array<{ topic: string; message: OutboundRecord }>; failed: number }> {
    const toMessage = (row: OutboxRow, value: Buffer): { topic: string; message: OutboundRecord } => ({
      topic: row.topic,
      message: { key: row.key, value, headers: { [EVENT_ID_HEADER]: row.event_id } },
    });
    // The usual case, rows written with their record value: nothing to encode, nothing to wait for.
    if (rows.every((r) => r.value)) return { messages: rows.map((r) => toMessage(r, r.value!)), failed: 0 };
    const encoded = await Promise.allSettled(rows.map((r) => r.value ?? opts.codecFor(r.topic).encode(r.payload!)));
    const messages: Array<{ topic: string; message: OutboundRecord }> = [];
    const poison: Array<{ id: string; error: string }> = [];
    encoded.forEach((result, i) => {
      const row = rows[i]!;
      if (result.status === 'fulfilled') {
        messages.push(toMessage(row, result.value));
        return;
      }
      const err = result.reason as unknown;
      // Registry down and the like fail the whole batch (retried); only a payload that can never encode is set aside.
      if (err instanceof RelayError && !err.retriable) poison.push({ id: row.id, error: truncate(`${err.code}: ${err.message}`) });
      else throw err;
    });
    if (poison.length) {
      await client.query(
        `UPDATE outbox SET failed_at = now(), attempts = attempts + 1, last_error = p.error
           FROM unnest($1::bigint[], $2::text[]) AS p(id, error) WHERE outbox.id = p.id`,
        [poison.map((p) => p.id), poison.map((p) => p.error)],
      );
      logger.error({ outboxIds: poison.map((p) => p.id) }, 'outbox rows set aside: their payload cannot be encoded');
    }
    return { messages, failed: poison.length };
  }

  /** A claimed batch: its transaction holds the row locks until commit or rollback. */
  interface Batch {
    client: PoolClient;
    ids: string[];
    messages: Array<{ topic: string; message: OutboundRecord }>;
    failed: number;
    t0: number;
    /** Set once the transaction ended (committed or rolled back) and the client went back to the pool. */
    released?: boolean;
  }

  /**
   * Open a transaction, lock up to batchSize pending rows in id order, encode them. Null = nothing pending.
   * `after`: start past this id — the rows of this relay's batches in flight, which SKIP LOCKED would
   * otherwise visit and skip one by one on every claim.
   */
  async function claim(after: string | undefined): Promise<Batch | null> {
    const t0 = performance.now();
    const client = await opts.pool.connect();
    let ids: string[] = [];
    try {
      const sql = after === undefined ? `${claimHead} ${claimTail}` : `${claimHead} AND id > ${BigInt(after)} ${claimTail}`;
      const results = (await client.query(sql)) as unknown as Array<pg.QueryResult<OutboxRow>>;
      const rows = results.at(-1)!.rows;
      ids = rows.map((r) => r.id);
      if (rows.length === 0) {
        await client.query('COMMIT');
        client.release();
        return null;
      }
      const { messages, failed } = await encodeRows(client, rows);
      return { client, ids, messages, failed, t0 };
    } catch (err) {
      await abort({ client, ids, messages: [], failed: 0, t0 }, err);
      throw err;
    }
  }

  async function send(batch: Batch): Promise<void> {
    for (const topicMessages of chunk(batch.messages)) {
      try {
        await opts.producer.sendBatch({ acks: ACKS_ALL, topicMessages });
      } catch (err) {
        throw kafkaError(err, 'outbox send failed', { outboxIds: `${batch.ids[0]}..${batch.ids[batch.ids.length - 1]}` });
      }
    }
  }

  async function commit(batch: Batch): Promise<void> {
    try {
      // One round trip; the ids are PostgreSQL's own bigints.
      await batch.client.query(`UPDATE outbox SET sent_at = now() WHERE id = ANY('{${batch.ids.join(',')}}'::bigint[]) AND failed_at IS NULL; COMMIT`);
    } catch (err) {
      // Sent but not marked: the rows go out again later (at-least-once).
      await abort(batch, err);
      throw err;
    }
    batch.released = true;
    batch.client.release();
    stats.published += batch.messages.length;
    stats.failedRows += batch.failed;
    stats.batches += 1;
    opts.onBatch?.({ rows: batch.messages.length, failed: batch.failed, ms: performance.now() - batch.t0 });
  }

  /** Roll the claim back (the rows are pending again) and note the error on them, best effort. */
  async function abort(batch: Batch, err: unknown): Promise<void> {
    if (batch.released) return;
    batch.released = true;
    await batch.client.query('ROLLBACK').catch(() => undefined);
    batch.client.release();
    if (batch.ids.length === 0) return;
    const message = truncate(err instanceof RelayError ? `${err.code}: ${err.message}` : ((err as Error).message ?? String(err)));
    await opts.pool.query('UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = ANY($1::bigint[])', [batch.ids, message]).catch(() => undefined);
  }

  async function prune(): Promise<void> {
    // In slices, so a large backlog of sent rows never holds long locks.
    for (;;) {
      const { rowCount } = await opts.pool.query(
        `DELETE FROM outbox WHERE id IN (
           SELECT id FROM outbox WHERE sent_at < now() - make_interval(secs => $1::double precision / 1000) LIMIT 5000)`,
        [tuning.retentionMs],
      );
      stats.pruned += rowCount ?? 0;
      if ((rowCount ?? 0) < 5000 || stopping) return;
    }
  }

  // --- the loop -----------------------------------------------------------------------------------

  /**
   * Up to `pipelineDepth` batches claimed and not yet acked: while batch N is being sent, N+1 and N+2
   * are claimed (each holds its rows' locks, so no other relay takes them). Sends are chained: N+1 is
   * sent only after N was acked, so rows leave in id order; if a send fails, every later batch is
   * rolled back unsent. Marking a sent batch does not hold up the next claim: commits finish on their
   * own, bounded by the pool's connections.
   */
  async function run(): Promise<void> {
    let backoffMs = 0;
    let lastPrune = 0;
    /**
     * Claims start after the last claimed id. An empty claim, a failure, or pollIntervalMs since the
     * last scan from the start resets it, so the next claim also finds rows committed late with lower
     * ids (a long backend transaction) and rows of a rolled-back batch.
     */
    let claimAfter: string | undefined;
    let lastFullScan = 0;
    /** Sends of the claimed batches, oldest first. */
    const unsent: Array<Promise<void>> = [];
    /** Every batch not yet committed or rolled back. */
    const open = new Set<Promise<void>>();
    const settleAll = async (): Promise<void> => {
      unsent.length = 0;
      await Promise.allSettled([...open]);
    };
    while (!stopping) {
      try {
        if (Date.now() - lastPrune >= tuning.pruneIntervalMs) {
          lastPrune = Date.now();
          await prune();
        }
        if (claimAfter === undefined) lastFullScan = Date.now();
        const batch = await claim(claimAfter);
        claimAfter = batch && Date.now() - lastFullScan < tuning.pollIntervalMs ? batch.ids.at(-1) : undefined;
        if (!batch) {
          // Nothing pending: finish what is in flight (a failure surfaces here), then wait for news.
          await Promise.all([...open]);
          unsent.length = 0;
          await sleep(tuning.pollIntervalMs, true);
          continue;
        }
        const rollBack = async (err: unknown): Promise<never> => {
          await abort(batch, err);
          throw err;
        };
        const sent = (unsent.at(-1) ?? Promise.resolve()).then(() => send(batch), rollBack);
        const done = sent.then(
          () => {
            // Cleared by an acked send, not by a claim: while Kafka is down claims still succeed.
            stats.failing = false;
            return commit(batch).catch((err: unknown) => {
              claimAfter = undefined; // its rows are pending again, below the bound
              stats.errors += 1;
              logger.warn({ err, outboxIds: `${batch.ids[0]}..${batch.ids.at(-1)}` }, 'outbox batch sent but not marked sent; its rows will go out again');
            });
          },
          rollBack,
        );
        open.add(done);
        done.then(
          () => open.delete(done),
          () => open.delete(done),
        );
        unsent.push(sent);
        // A short batch does not end the pipeline: rows committed meanwhile are claimed at once, and
        // only an empty claim (above) waits for news.
        if (unsent.length >= tuning.pipelineDepth) await unsent.shift();
        backoffMs = 0;
      } catch (err) {
        claimAfter = undefined;
        await settleAll();
        stats.errors += 1;
        stats.failing = true;
        backoffMs = Math.min(tuning.maxBackoffMs, backoffMs ? backoffMs * 2 : Math.max(100, tuning.pollIntervalMs / 2));
        const retriable = (err as { retriable?: boolean }).retriable !== false;
        logger[retriable ? 'warn' : 'error']({ err, retryInMs: backoffMs }, 'outbox batch failed; rows stay pending');
        await sleep(backoffMs, false);
      }
    }
    // Stopping: the batches in flight are finished (sent and marked), not abandoned.
    await settleAll();
  }

  return {
    async start() {
      if (running) return;
      await listen();
      running = run();
    },

    close() {
      closing ??= (async () => {
        stopping = true;
        stopSleeper?.();
        await running;
        clearTimeout(reconnectTimer);
        const client = listener;
        listener = undefined;
        if (client) {
          client.removeAllListeners();
          client.on('error', () => undefined);
          await client.end().catch(() => undefined);
        }
      })();
      return closing;
    },

    stats: () => ({ ...stats }),
  };
}
