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
 * - Crash between SMTP and the commit (issue 12): a digest is claimed in PostgreSQL, with its offset
 *   ranges and rendered mails, before it is sent, and marked sent after; records a claimed digest of
 *   the group counted are skipped when read again, and a dead claimer's digest is sent by another
 *   process with the same Message-IDs (digest-log.ts).
 * - Throttled integrations (issue 18): a digest has a "throttled" section (never counted as dead
 *   letters), and long episodes are alerted once each (throttle-watch.ts).
 */
import { sleep as abortableSleep } from '../../lib/sleep.ts';
import type { Config } from '../../lib/config.ts';
import { readHeaders } from '../../lib/headers.ts';
import { assignedKeys, createGroupConsumer, createKafka, fromTpKey, runManualCommit, tpKey, crashSignal, type Consumer, type Kafka } from '../../lib/kafka.ts';
import type { Logger } from '../../lib/logger.ts';
import { createPool, type Pool } from '../../lib/db.ts';
import { createMailer, type Mail, type Mailer } from '../../lib/mailer.ts';
import { createEventCodec, type EventCodec } from '../../lib/serde.ts';
import { createDeadLetterMetrics, type DeadLetterMetrics } from '../dead-letter-metrics.ts';
import { Digest, factOf, renderDigest, type DecodedFields, type ThrottledSummary } from './digest.ts';
import { createDigestLog, type SendOptions } from './digest-log.ts';
import { alertOptions, type AlertOptions } from './options.ts';
import { createThrottleWatch } from './throttle-watch.ts';

export { DEFAULT_GROUP_ID } from './options.ts';

export interface AlertConsumerDeps {
  config: Config;
  logger: Logger;
  options?: Partial<AlertOptions>;
  metrics?: DeadLetterMetrics;
  /** Default: built from config.alerts (lib/mailer.ts). */
  mailer?: Mailer;
  kafka?: Kafka;
  codec?: EventCodec;
  /** Default: a small pool from config.database (the digest log and throttling episodes). */
  pool?: Pool;
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
  sealedAt: number;
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
  // --- digest log and throttling (issues 12 and 18): see digest-log.ts and throttle-watch.ts ---
  const pool = deps.pool ?? createPool(config.database, { max: 3, applicationName: `ats-relay ${opts.groupId}` });
  const digestLog = createDigestLog(pool);
  const throttleWatch = createThrottleWatch({
    pool, mailer, logger, afterMs: opts.throttledAfterMs, intervalMs: opts.throttleCheckIntervalMs, leaseMs: opts.claimLeaseMs,
    staleAfterMs: opts.throttleStaleAfterMs, to: opts.to, companyRecipients: opts.companyRecipients,
  });
  /** Per partition: the last offset a digest of this group counted (claimed or sent); -1 none. Loaded once per assignment. */
  const coveredUpTo = new Map<string, number>();
  let recoveryTimer: NodeJS.Timeout | undefined;
  let lastPruneAt = 0;
  const crashHere = (point: AlertOptions['crashPoint']): void => {
    if (opts.crashPoint === point) process.kill(process.pid, 'SIGKILL');
  };

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

  function render(digest: Digest, sealedAt: number, windows: number, throttled: ThrottledSummary[]): Array<Mail & { audience: string }> {
    const base = { from: digest.startedAt ?? sealedAt, to: sealedAt, windowMs: opts.windowMs, bucket: opts.bucket, prefix: opts.prefix, deferredWindows: windows };
    const mails: Array<Mail & { audience: string }> = [];
    if (opts.to.length) mails.push({ ...renderDigest(digest.groups(), { ...base, throttled }), to: opts.to, audience: 'ops' });
    for (const company of digest.companies()) {
      const to = opts.companyRecipients[company];
      if (!to?.length) continue;
      mails.push({ ...renderDigest(digest.groups((c) => c === company), { ...base, company, throttled: throttled.filter((t) => t.companyId === company) }), to, audience: 'company' });
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
    outgoing = { digest: building, sealedAt: t };
    building = new Digest(limits);
    const windows = deferredWindows;
    deferredWindows = 0;
    sending = send(outgoing, windows).finally(() => {
      sending = undefined;
    });
  }

  function armWindowTimer(): void {
    clearTimeout(windowTimer);
    const t = now();
    const next = Math.floor(t / opts.windowMs) * opts.windowMs + opts.windowMs;
    windowTimer = setTimeout(onWindowEnd, Math.max(1, next - t));
  }

  const sendOptions = (): SendOptions => ({
    mailer,
    logger,
    signal: abort.signal,
    leaseMs: opts.claimLeaseMs,
    initialBackoffMs: opts.initialBackoffMs,
    maxBackoffMs: opts.maxBackoffMs,
    onMailSent: (mail) => metrics.digestMails.inc({ audience: mail.audience }),
    onSmtpFailure: () => metrics.smtpFailures.inc(),
    afterSmtp: () => crashHere('after-smtp'),
  });

  /**
   * Claim the digest in the digest log (what other digests of the group counted is taken out), send
   * its mails, mark it sent, then commit its offsets. Never gives up on SMTP or PostgreSQL.
   */
  async function send(out: Outgoing, windows: number): Promise<void> {
    let delay = opts.initialBackoffMs;
    const sealed = out.digest;
    for (;;) {
      if (abort.signal.aborted) return;
      try {
        const throttled = await throttleWatch.current();
        const claim = await digestLog.claim(opts.groupId, sealed, (d) => render(d, out.sealedAt, windows, throttled), opts.claimLeaseMs);
        out.digest = claim.digest;
        updatePending();
        if (claim.claimed) {
          const sent = await digestLog.send(claim.claimed, sendOptions());
          if (abort.signal.aborted) return;
          if (sent) {
            crashHere('after-mark');
            metrics.digestsSent.inc();
            metrics.digestRecords.inc(claim.claimed.records);
            logger.info({ records: claim.claimed.records, mails: claim.claimed.mails.length, digest: claim.claimed.id }, 'digest sent');
          }
        } else logger.info({ records: sealed.total }, 'every record of the digest was counted by another digest already: nothing to send');
        break;
      } catch (err) {
        logger.warn({ err, retryInMs: delay, records: sealed.total }, 'could not claim the digest in PostgreSQL; retrying (kept, offsets uncommitted)');
        await sleep(delay);
        delay = Math.min(delay * 2, opts.maxBackoffMs);
      }
    }
    delay = opts.initialBackoffMs;
    for (;;) {
      // Only partitions still ours: a revoked one's commit belongs to its new owner.
      // The sealed digest's: records taken out of it at the claim are in another claimed digest.
      const offsets = sealed.commitOffsets().filter((o) => assigned.has(tpKey(o.topic, o.partition)));
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

  /** Hold a partition for 5 s (the registry or PostgreSQL is unavailable) and read its records again then. */
  function holdPartition(topic: string, partition: number): void {
    const key = tpKey(topic, partition);
    consumer.pause([{ topic, partitions: [partition] }]);
    decodeRetryTimers.set(
      key,
      setTimeout(() => {
        decodeRetryTimers.delete(key);
        if (!stopping && assigned.has(key)) consumer.resume([{ topic, partitions: [partition] }]);
      }, 5_000),
    );
  }

  /** Send digests whose claimer died (lease past), and now and then forget old ones. */
  async function recover(): Promise<void> {
    if (stopping) return;
    for (;;) {
      const claimed = await digestLog.takeOverExpired(opts.groupId, opts.claimLeaseMs);
      if (!claimed || stopping) break;
      logger.warn({ digest: claimed.id, records: claimed.records }, 'sending a digest whose process died before marking it sent (same Message-IDs)');
      if (await digestLog.send(claimed, sendOptions())) metrics.digestsSent.inc();
    }
    if (Date.now() - lastPruneAt > 3_600_000) {
      lastPruneAt = Date.now();
      await digestLog.prune(opts.digestRetentionMs);
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
      coveredUpTo.delete(key); // digest log (issue 12): loaded again if it comes back
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
          // --- digest log (issue 12): records a digest of this group counted are not counted again ---
          if (!coveredUpTo.has(key)) {
            try {
              coveredUpTo.set(key, (await digestLog.coveredUpTo(opts.groupId, topic, partition)) ?? -1);
            } catch (err) {
              logger.warn({ err, partition }, 'could not read the digest log (PostgreSQL unavailable); pausing the partition for 5 s');
              holdPartition(topic, partition);
              return;
            }
          }
          const covered = coveredUpTo.get(key)!;
          let skippedUpTo: number | undefined;
          for (const message of batch.messages) {
            if (!isRunning() || isStale() || stopping) break;
            const offset = Number(message.offset);
            if (offset < (nextOffset.get(key) ?? -1)) {
              resolveOffset(message.offset);
              continue;
            }
            if (offset <= covered) {
              nextOffset.set(key, offset + 1);
              resolveOffset(message.offset);
              skippedUpTo = offset;
              continue;
            }
            const record = { topic, partition, offset: message.offset, timestamp: message.timestamp, headers: readHeaders(message.headers) };
            let decoded: DecodedFields | undefined;
            try {
              decoded = await decodeFields(message.value);
            } catch (err) {
              // Registry unreachable: hold this partition a moment and read the record again.
              logger.warn({ err, partition, offset: message.offset }, 'could not decode (registry unavailable); pausing the partition for 5 s');
              holdPartition(topic, partition);
              break;
            }
            building.add(factOf(record, decoded), now());
            nextOffset.set(key, offset + 1);
            resolveOffset(message.offset);
          }
          // Counted and sent (or claimed) before a crash: commit past them unless this digest holds earlier records.
          if (skippedUpTo !== undefined && !building.ranges().some((r) => r.topic === topic && r.partition === partition) && !outgoing?.digest.ranges().some((r) => r.topic === topic && r.partition === partition)) {
            await consumer.commitOffsets([{ topic, partition, offset: String(skippedUpTo + 1) }]).catch((err: unknown) => logger.warn({ err, partition }, 'committing past records already in a digest failed (skipped again on restart)'));
          }
          updatePending();
          const last = batch.messages[batch.messages.length - 1];
          if (last) metrics.lag.set({ topic, partition: String(partition) }, Math.max(0, Number(batch.highWatermark) - Number(last.offset) - 1));
          await heartbeat();
        },
      });
      armWindowTimer();
      // digest log and throttling (issues 12, 18)
      let recovering: Promise<void> | undefined;
      const recoverRound = (): void => {
        recovering ??= recover()
          .catch((err: unknown) => logger.warn({ err }, 'looking for unsent digests failed; next round again'))
          .finally(() => (recovering = undefined));
      };
      recoverRound();
      recoveryTimer = setInterval(recoverRound, opts.recoveryIntervalMs);
      throttleWatch.start();
      logger.info({ windowMs: opts.windowMs, maxDigests: opts.maxDigests, rateWindowMs: opts.rateWindowMs, to: opts.to }, 'alerting on the DLQ');
    },

    close() {
      stopping = true;
      closing ??= (async () => {
        clearTimeout(windowTimer);
        clearInterval(recoveryTimer);
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
        await throttleWatch.close();
        if (ownsMailer) mailer.close();
        if (deps.pool === undefined) await pool.end();
        logger.info({ notSent: building.total }, 'stopped');
      })();
      return closing;
    },
  };
}
