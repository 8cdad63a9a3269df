/**
 * The alert consumer (group `ats-relay.alerts`): counts dead letters by company, platform and error
 * code and e-mails one digest per window (aligned to wall-clock multiples of `windowMs`) to the ops
 * recipients, plus each affected company's own recipients (their groups only).
 *
 * - Offsets are committed only for records counted in a digest that SMTP accepted. A record read but
 *   not yet in a sent digest stays uncommitted: a restart re-reads and counts it then.
 * - SMTP down: the sealed digest is kept and retried with backoff; new records aggregate into the
 *   next digest meanwhile. Nothing is dropped.
 * - Rate cap: at most `maxDigests` digests per `rateWindowMs`. A window end under the cap does not
 *   send; the digest keeps aggregating and goes out at the first window end the cap allows, with
 *   every record counted exactly once.
 * - Re-reads (rebalance, restart) are not double-counted within a digest: per partition, offsets
 *   below the next expected one are skipped, and a digest counts each offset once (digest.ts).
 * - Rebalance: a revoked partition's records leave the digest being built (its new owner counts them).
 * - close(): stop fetching, let a digest being sent finish (bounded), commit, leave; the digest still
 *   aggregating is not sent (its records are uncommitted and counted by the next run).
 */
import { sleep as abortableSleep } from '../../lib/sleep.ts';
import type { Config } from '../../lib/config.ts';
import { readHeaders } from '../../lib/headers.ts';
import { assignedKeys, createGroupConsumer, createKafka, fromTpKey, runManualCommit, tpKey, crashSignal, type Consumer, type Kafka } from '../../lib/kafka.ts';
import type { Logger } from '../../lib/logger.ts';
import { createMailer, type Mail, type Mailer } from './mailer.ts';
import { createEventCodec, type EventCodec } from '../../lib/serde.ts';
import { createDeadLetterMetrics, type DeadLetterMetrics } from '../dead-letter-metrics.ts';
import { Digest, factOf, renderDigest, type DecodedFields } from './digest.ts';
import { alertOptions, type AlertOptions } from './options.ts';

export { DEFAULT_GROUP_ID } from './options.ts';

export interface AlertConsumerDeps {
  config: Config;
  logger: Logger;
  options?: Partial<AlertOptions>;
  metrics?: DeadLetterMetrics;
  /** Default: built from config.alerts (./mailer.ts). */
  mailer?: Mailer;
  kafka?: Kafka;
  codec?: EventCodec;
  now?: () => number;
}

export interface AlertConsumer {
  readonly groupId: string;
  readonly metrics: DeadLetterMetrics;
  readonly ready: boolean;
  /** Rejects once the Kafka client gave up for good: close and exit non-zero (a supervisor restarts the process). */
  readonly failed: Promise<never>;
  /** Records counted and not yet in a sent digest (tests, diagnostics). */
  readonly pending: number;
  start(): Promise<void>;
  close(): Promise<void>;
}

interface Outgoing {
  digest: Digest;
  mails: Array<Mail & { audience: string; sent: boolean }>;
}


export function createAlertConsumer(deps: AlertConsumerDeps): AlertConsumer {
  const { config } = deps;
  const opts = alertOptions(config, deps.options);
  const now = deps.now ?? Date.now;
  const logger = deps.logger.child({ component: 'alerts', group: opts.groupId, topic: opts.topic });
  const metrics = deps.metrics ?? createDeadLetterMetrics('alerts');
  const mailer = deps.mailer ?? createMailer(config.alerts);
  const ownsMailer = deps.mailer === undefined;
  const kafka = deps.kafka ?? createKafka(config.kafka, logger, { clientIdSuffix: opts.groupId });
  const codec = deps.codec ?? createEventCodec({ registryUrl: config.schemaRegistry.url, topic: config.topics.applications });
  const consumer: Consumer = createGroupConsumer(kafka, { groupId: opts.groupId, sessionTimeoutMs: opts.sessionTimeoutMs, maxWaitTimeMs: 500 });
  const limits = { maxSamples: opts.maxSamples, maxApplicationIds: opts.maxApplicationIds };

  let building = new Digest(limits);
  let outgoing: Outgoing | undefined;
  let sending: Promise<void> | undefined;
  /** Per partition: the next offset to count (re-fetched records below it are skipped). */
  const nextOffset = new Map<string, number>();
  const decodeRetryTimers = new Map<string, NodeJS.Timeout>();
  /** When digests were sealed, for the rate cap. */
  const sentAt: number[] = [];
  let deferredWindows = 0;
  let assigned = new Set<string>();
  const abort = new AbortController();
  let running = false;
  let joined = false;
  const crash = crashSignal();
  let windowTimer: NodeJS.Timeout | undefined;
  /** Set first thing in close() (the closing promise is only assigned after its synchronous part ran). */
  let stopping = false;
  let closing: Promise<void> | undefined;

  const sleep = (ms: number): Promise<void> => abortableSleep(ms, abort.signal);

  function updatePending(): void {
    metrics.pendingRecords.set(building.total + (outgoing?.digest.total ?? 0));
  }

  function render(digest: Digest, sealedAt: number): Outgoing['mails'] {
    const base = { from: digest.startedAt ?? sealedAt, to: sealedAt, windowMs: opts.windowMs, bucket: opts.bucket, prefix: opts.prefix, deferredWindows };
    const mails: Outgoing['mails'] = [];
    if (opts.to.length) mails.push({ ...renderDigest(digest.groups(), base), to: opts.to, audience: 'ops', sent: false });
    for (const company of digest.companies()) {
      const to = opts.companyRecipients[company];
      if (!to?.length) continue;
      mails.push({ ...renderDigest(digest.groups((c) => c === company), { ...base, company }), to, audience: 'company', sent: false });
    }
    return mails;
  }

  /** At a window end: seal the digest being built and send it, unless one is in flight or the cap holds it. */
  function onWindowEnd(): void {
    armWindowTimer();
    if (stopping || outgoing || building.empty) return;
    const t = now();
    while (sentAt.length && sentAt[0]! <= t - opts.rateWindowMs) sentAt.shift();
    if (sentAt.length >= opts.maxDigests) {
      deferredWindows++;
      metrics.digestsDeferred.inc();
      logger.warn({ pending: building.total, cap: opts.maxDigests }, 'digest rate cap reached: failures keep aggregating into the next digest');
      return;
    }
    sentAt.push(t);
    outgoing = { digest: building, mails: render(building, t) };
    building = new Digest(limits);
    deferredWindows = 0;
    sending = send(outgoing).finally(() => {
      sending = undefined;
    });
  }

  function armWindowTimer(): void {
    clearTimeout(windowTimer);
    const t = now();
    const next = Math.floor(t / opts.windowMs) * opts.windowMs + opts.windowMs;
    windowTimer = setTimeout(onWindowEnd, Math.max(1, next - t));
  }

  /** Send every mail of the digest (each at most once), then commit its offsets. Never gives up on SMTP. */
  async function send(out: Outgoing): Promise<void> {
    let delay = opts.initialBackoffMs;
    let failures = 0;
    for (const mail of out.mails) {
      while (!mail.sent) {
        if (abort.signal.aborted) return;
        try {
          await mailer.send(mail);
          mail.sent = true;
          metrics.digestMails.inc({ audience: mail.audience });
        } catch (err) {
          failures++;
          metrics.smtpFailures.inc();
          logger[failures === 1 || failures % 10 === 0 ? 'warn' : 'debug'](
            { err: { message: (err as Error).message, code: (err as { code?: string }).code }, failures, retryInMs: delay, records: out.digest.total },
            'SMTP did not accept the digest; retrying (kept, offsets uncommitted)',
          );
          await sleep(delay);
          delay = Math.min(delay * 2, opts.maxBackoffMs);
        }
      }
    }
    metrics.digestsSent.inc();
    metrics.digestRecords.inc(out.digest.total);
    logger.info({ records: out.digest.total, mails: out.mails.length }, 'digest sent');
    delay = opts.initialBackoffMs;
    for (;;) {
      // Only partitions still ours: a revoked one's commit belongs to its new owner.
      const offsets = out.digest.commitOffsets().filter((o) => assigned.has(tpKey(o.topic, o.partition)));
      if (offsets.length === 0 || abort.signal.aborted) break;
      try {
        await consumer.commitOffsets(offsets);
        break;
      } catch (err) {
        metrics.commitFailures.inc();
        logger.warn({ err, retryInMs: delay }, 'offset commit after a sent digest failed; retrying');
        await sleep(delay);
        delay = Math.min(delay * 2, opts.maxBackoffMs);
      }
    }
    outgoing = undefined;
    updatePending();
  }

  async function decodeFields(value: Buffer | null): Promise<DecodedFields | undefined> {
    if (value === null) return undefined;
    try {
      const event = await codec.decode(value);
      return { companyId: event.companyId, platform: event.platform, applicationId: event.applicationId };
    } catch (err) {
      if ((err as { retriable?: boolean }).retriable) throw err;
      metrics.decodeFailures.inc();
      return undefined;
    }
  }

  function onJoin(memberAssignment: Record<string, number[]>): void {
    joined = true;
    const next = assignedKeys(memberAssignment);
    for (const key of assigned) {
      if (next.has(key)) continue;
      const { topic, partition } = fromTpKey(key);
      const dropped = building.dropPartition(topic, partition);
      if (dropped) logger.info({ partition, dropped }, 'partition revoked: its records leave this digest (the new owner counts them)');
      nextOffset.delete(key);
      clearTimeout(decodeRetryTimers.get(key));
      decodeRetryTimers.delete(key);
    }
    assigned = next;
    updatePending();
    logger.info({ assignment: memberAssignment }, 'joined consumer group');
  }

  return {
    groupId: opts.groupId,
    metrics,
    failed: crash.failed,
    get ready() {
      return running && joined;
    },
    get pending() {
      return building.total + (outgoing?.digest.total ?? 0);
    },

    async start() {
      running = true;
      await runManualCommit(consumer, {
        topics: [opts.topic],
        logger,
        onJoin,
        onCrash: (err, fatal) => {
          joined = false; // until the client rejoins, or for good
          if (fatal) crash.fail(err);
        },
        eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
          const { topic, partition } = batch;
          const key = tpKey(topic, partition);
          for (const message of batch.messages) {
            if (!isRunning() || isStale() || stopping) break;
            const offset = Number(message.offset);
            if (offset < (nextOffset.get(key) ?? -1)) {
              resolveOffset(message.offset);
              continue;
            }
            const record = { topic, partition, offset: message.offset, timestamp: message.timestamp, headers: readHeaders(message.headers) };
            let decoded: DecodedFields | undefined;
            try {
              decoded = await decodeFields(message.value);
            } catch (err) {
              // Registry unreachable: hold this partition a moment and read the record again.
              logger.warn({ err, partition, offset: message.offset }, 'could not decode (registry unavailable); pausing the partition for 5 s');
              consumer.pause([{ topic, partitions: [partition] }]);
              decodeRetryTimers.set(
                key,
                setTimeout(() => {
                  decodeRetryTimers.delete(key);
                  if (!stopping && assigned.has(key)) consumer.resume([{ topic, partitions: [partition] }]);
                }, 5_000),
              );
              break;
            }
            building.add(factOf(record, decoded), now());
            nextOffset.set(key, offset + 1);
            resolveOffset(message.offset);
          }
          updatePending();
          const last = batch.messages[batch.messages.length - 1];
          if (last) metrics.lag.set({ topic, partition: String(partition) }, Math.max(0, Number(batch.highWatermark) - Number(last.offset) - 1));
          await heartbeat();
        },
      });
      armWindowTimer();
      logger.info({ windowMs: opts.windowMs, maxDigests: opts.maxDigests, rateWindowMs: opts.rateWindowMs, to: opts.to }, 'alerting on the DLQ');
    },

    close() {
      stopping = true;
      closing ??= (async () => {
        clearTimeout(windowTimer);
        for (const timer of decodeRetryTimers.values()) clearTimeout(timer);
        if (running) {
          try {
            consumer.pause([{ topic: opts.topic }]);
          } catch {
            // not running any more
          }
        }
        if (sending) {
          const finished = await Promise.race([sending.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), opts.drainTimeoutMs))]);
          if (!finished) logger.warn({ records: outgoing?.digest.total }, 'drain time over: digest not sent, its records stay uncommitted (re-read on restart)');
        }
        abort.abort();
        if (sending) await Promise.race([sending, new Promise((r) => setTimeout(r, 5_000))]);
        if (running) await consumer.disconnect();
        running = false;
        if (ownsMailer) mailer.close();
        logger.info({ notSent: building.total }, 'stopped');
      })();
      return closing;
    },
  };
}
