/**
 * The alert consumer's decision: what goes into a digest, when a digest is sealed and sent, and
 * when its records' offsets are committed (only once SMTP accepted every mail of it). The runtime
 * (consumers/runtime/) brings the records and owns the group; this file never talks to Kafka itself.
 *
 * - A window end under the rate cap does not send; the digest keeps aggregating and goes out at
 *   the first window end the cap allows, with every record counted exactly once.
 * - Re-reads (rebalance, restart) are not double-counted within a digest: per partition, offsets
 *   below the next expected one are skipped, and a digest counts each offset once (digest.ts).
 * - Revoked partitions: their records leave the digest being built (the new owner counts them).
 * - Registry unreachable while decoding: the partition is held 5 s and the record read again.
 * - Close: `drain` lets a digest being sent finish (bounded); the digest still aggregating is not
 *   sent (its records are uncommitted and counted by the next run).
 * - Crash between SMTP and the commit (issue 12): a digest is claimed in PostgreSQL, with its offset
 *   ranges and rendered mails, before it is sent, and marked sent after; records a claimed digest of
 *   the group counted are skipped when read again, and a dead claimer's digest is sent by another
 *   process with the same Message-IDs (digest-log.ts).
 * - Throttled integrations (issue 18): a digest has a "throttled" section (never counted as dead
 *   letters), and long episodes are alerted once each (throttle-watch.ts).
 */
import { tpKey } from '../../lib/kafka/index.ts';
import { readHeaders } from '../../lib/headers.ts';
import type { Logger } from '../../lib/logger.ts';
import type { Mail, Mailer } from './mailer.ts';
import type { createDigestLog, SendOptions } from './digest-log.ts';
import type { ThrottleWatch } from './throttle-watch.ts';
import type { EventCodec } from '../../lib/serde.ts';
import { sleep as abortableSleep } from '../../lib/sleep.ts';
import type { DeadLetterMetrics } from '../dead-letter-metrics.ts';
import type { ConsumerRuntime, PartitionWork } from '../runtime/runtime.ts';
import { Digest, factOf, renderDigest, type DecodedFields, type ThrottledSummary } from './digest.ts';
import type { AlertOptions } from './options.ts';

/** Hold reason on the runtime: the schema registry did not answer; the record is read again later. */
const REGISTRY_DOWN = 'registry unavailable';
const REGISTRY_RETRY_MS = 5_000;
type DigestLog = ReturnType<typeof createDigestLog>;
/** Hold reason: PostgreSQL did not answer while reading the digest log. */
const DIGEST_LOG_DOWN = 'digest log unavailable';

export interface AlertHandlerDeps {
  opts: AlertOptions;
  mailer: Mailer;
  codec: EventCodec;
  metrics: DeadLetterMetrics;
  logger: Logger;
  runtime: Pick<ConsumerRuntime, 'holdUntil' | 'commit' | 'owns' | 'isStopping'>;
  now: () => number;
  digestLog: DigestLog;
  throttleWatch: ThrottleWatch;
}

export interface AlertHandler extends PartitionWork {
  /** Records counted and not yet in a sent digest. */
  readonly pending: number;
  /** Arm the window timer and the recovery of dead claimers' digests (after the runtime started). */
  startWindows(): void;
  /** Stop sending, retrying and watching throttling (after close). */
  stop(): Promise<void>;
}

interface Outgoing {
  digest: Digest;
  sealedAt: number;
}

export function createAlertHandler(deps: AlertHandlerDeps): AlertHandler {
  const { opts, mailer, codec, metrics, logger, runtime, now, digestLog, throttleWatch } = deps;
  const limits = { maxSamples: opts.maxSamples, maxApplicationIds: opts.maxApplicationIds };

  let building = new Digest(limits);
  let outgoing: Outgoing | undefined;
  let sending: Promise<void> | undefined;
  /** Per partition: the next offset to count (re-fetched records below it are skipped). */
  const nextOffset = new Map<string, number>();
  /** Per partition: the last offset a digest of this group counted (claimed or sent); -1 none. Loaded once per assignment. */
  const coveredUpTo = new Map<string, number>();
  let recoveryTimer: NodeJS.Timeout | undefined;
  let recovering: Promise<void> | undefined;
  let lastPruneAt = 0;
  const crashHere = (point: AlertOptions['crashPoint']): void => {
    if (opts.crashPoint === point) process.kill(process.pid, 'SIGKILL');
  };
  /** When digests were sealed, for the rate cap. */
  const sentAt: number[] = [];
  let deferredWindows = 0;
  const abort = new AbortController();
  let windowTimer: NodeJS.Timeout | undefined;

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
    if (runtime.isStopping || outgoing || building.empty) return;
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
      const offsets = sealed.commitOffsets().filter((o) => runtime.owns(o.topic, o.partition));
      if (offsets.length === 0 || abort.signal.aborted) break;
      try {
        await runtime.commit(offsets);
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

  /** Send digests whose claimer died (lease past), and now and then forget old ones. */
  async function recover(): Promise<void> {
    if (runtime.isStopping) return;
    for (;;) {
      const claimed = await digestLog.takeOverExpired(opts.groupId, opts.claimLeaseMs);
      if (!claimed || runtime.isStopping) break;
      logger.warn({ digest: claimed.id, records: claimed.records }, 'sending a digest whose process died before marking it sent (same Message-IDs)');
      if (await digestLog.send(claimed, sendOptions())) metrics.digestsSent.inc();
    }
    if (Date.now() - lastPruneAt > 3_600_000) {
      lastPruneAt = Date.now();
      await digestLog.prune(opts.digestRetentionMs);
    }
  }

  function recoverRound(): void {
    recovering ??= recover()
      .catch((err: unknown) => logger.warn({ err }, 'looking for unsent digests failed; next round again'))
      .finally(() => (recovering = undefined));
  }

  return {
    get pending() {
      return building.total + (outgoing?.digest.total ?? 0);
    },

    async onBatch(batch) {
      const { topic, partition } = batch;
      const key = tpKey(topic, partition);
      // Records a digest of this group already counted (claimed or sent) are not counted again.
      if (!coveredUpTo.has(key)) {
        try {
          coveredUpTo.set(key, (await digestLog.coveredUpTo(opts.groupId, topic, partition)) ?? -1);
        } catch (err) {
          logger.warn({ err, partition }, 'could not read the digest log (PostgreSQL unavailable); pausing the partition for 5 s');
          runtime.holdUntil(topic, partition, now() + REGISTRY_RETRY_MS, DIGEST_LOG_DOWN, now());
          return;
        }
      }
      const covered = coveredUpTo.get(key)!;
      let skippedUpTo: number | undefined;
      for (const message of batch.records) {
        if (batch.isStale()) break;
        const offset = Number(message.offset);
        if (offset < (nextOffset.get(key) ?? -1)) {
          batch.resolveOffset(message.offset);
          continue;
        }
        if (offset <= covered) {
          nextOffset.set(key, offset + 1);
          batch.resolveOffset(message.offset);
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
          runtime.holdUntil(topic, partition, now() + REGISTRY_RETRY_MS, REGISTRY_DOWN, now());
          break;
        }
        building.add(factOf(record, decoded), now());
        nextOffset.set(key, offset + 1);
        batch.resolveOffset(message.offset);
      }
      // Counted and sent (or claimed) before a crash: commit past them unless a digest here holds earlier records.
      const held = (d: Digest | undefined): boolean => d?.ranges().some((r) => r.topic === topic && r.partition === partition) ?? false;
      if (skippedUpTo !== undefined && !held(building) && !held(outgoing?.digest)) {
        await runtime
          .commit([{ topic, partition, offset: String(skippedUpTo + 1) }])
          .catch((err: unknown) => logger.warn({ err, partition }, 'committing past records already in a digest failed (skipped again on restart)'));
      }
      updatePending();
    },

    revoked(partitions) {
      for (const { topic, partition } of partitions) {
        const dropped = building.dropPartition(topic, partition);
        if (dropped) logger.info({ partition, dropped }, 'partition revoked: its records leave this digest (the new owner counts them)');
        nextOffset.delete(tpKey(topic, partition));
        coveredUpTo.delete(tpKey(topic, partition)); // read from the digest log again if it comes back
      }
      updatePending();
    },

    assigned() {
      updatePending();
    },

    async drain(deadline) {
      clearTimeout(windowTimer);
      clearInterval(recoveryTimer);
      if (sending) {
        const finished = await Promise.race([sending.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), Math.max(0, deadline - Date.now())))]);
        if (!finished) logger.warn({ records: outgoing?.digest.total }, 'drain time over: digest not sent, its records stay uncommitted (re-read on restart)');
      }
      abort.abort();
      if (sending) await Promise.race([sending, new Promise((r) => setTimeout(r, 5_000))]);
    },

    startWindows() {
      armWindowTimer();
      recoverRound();
      recoveryTimer = setInterval(recoverRound, opts.recoveryIntervalMs);
      throttleWatch.start();
    },

    async stop() {
      clearTimeout(windowTimer);
      clearInterval(recoveryTimer);
      abort.abort();
      await throttleWatch.close();
    },
  };
}
