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
 */
import { tpKey } from '../../lib/kafka/index.ts';
import { readHeaders } from '../../lib/headers.ts';
import type { Logger } from '../../lib/logger.ts';
import type { Mail, Mailer } from './mailer.ts';
import type { EventCodec } from '../../lib/serde.ts';
import { sleep as abortableSleep } from '../../lib/sleep.ts';
import type { DeadLetterMetrics } from '../dead-letter-metrics.ts';
import type { ConsumerRuntime, PartitionWork } from '../runtime/runtime.ts';
import { Digest, factOf, renderDigest, type DecodedFields } from './digest.ts';
import type { AlertOptions } from './options.ts';

/** Hold reason on the runtime: the schema registry did not answer; the record is read again later. */
const REGISTRY_DOWN = 'registry unavailable';
const REGISTRY_RETRY_MS = 5_000;

export interface AlertHandlerDeps {
  opts: AlertOptions;
  mailer: Mailer;
  codec: EventCodec;
  metrics: DeadLetterMetrics;
  logger: Logger;
  runtime: Pick<ConsumerRuntime, 'holdUntil' | 'commit' | 'owns' | 'isStopping'>;
  now: () => number;
}

export interface AlertHandler extends PartitionWork {
  /** Records counted and not yet in a sent digest. */
  readonly pending: number;
  /** Arm the window timer (after the runtime started). */
  startWindows(): void;
  /** Stop sending and retrying (after close). */
  stop(): void;
}

interface Outgoing {
  digest: Digest;
  mails: Array<Mail & { audience: string; sent: boolean }>;
}

export function createAlertHandler(deps: AlertHandlerDeps): AlertHandler {
  const { opts, mailer, codec, metrics, logger, runtime, now } = deps;
  const limits = { maxSamples: opts.maxSamples, maxApplicationIds: opts.maxApplicationIds };

  let building = new Digest(limits);
  let outgoing: Outgoing | undefined;
  let sending: Promise<void> | undefined;
  /** Per partition: the next offset to count (re-fetched records below it are skipped). */
  const nextOffset = new Map<string, number>();
  /** When digests were sealed, for the rate cap. */
  const sentAt: number[] = [];
  let deferredWindows = 0;
  const abort = new AbortController();
  let windowTimer: NodeJS.Timeout | undefined;

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
      const offsets = out.digest.commitOffsets().filter((o) => runtime.owns(o.topic, o.partition));
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

  return {
    get pending() {
      return building.total + (outgoing?.digest.total ?? 0);
    },

    async onBatch(batch) {
      const { topic, partition } = batch;
      const key = tpKey(topic, partition);
      for (const message of batch.records) {
        if (batch.isStale()) break;
        const offset = Number(message.offset);
        if (offset < (nextOffset.get(key) ?? -1)) {
          batch.resolveOffset(message.offset);
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
      updatePending();
    },

    revoked(partitions) {
      for (const { topic, partition } of partitions) {
        const dropped = building.dropPartition(topic, partition);
        if (dropped) logger.info({ partition, dropped }, 'partition revoked: its records leave this digest (the new owner counts them)');
        nextOffset.delete(tpKey(topic, partition));
      }
      updatePending();
    },

    assigned() {
      updatePending();
    },

    async drain(deadline) {
      clearTimeout(windowTimer);
      if (sending) {
        const finished = await Promise.race([sending.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), Math.max(0, deadline - Date.now())))]);
        if (!finished) logger.warn({ records: outgoing?.digest.total }, 'drain time over: digest not sent, its records stay uncommitted (re-read on restart)');
      }
      abort.abort();
      if (sending) await Promise.race([sending, new Promise((r) => setTimeout(r, 5_000))]);
    },

    startWindows() {
      armWindowTimer();
    },

    stop() {
      clearTimeout(windowTimer);
      abort.abort();
    },
  };
}
