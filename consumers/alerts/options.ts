/**
 * Options of the alert consumer, with their defaults (the shared ones in ../dead-letter-consumer.ts).
 */
import type { Config } from '../../lib/config.ts';
import { deadLetterReadDefaults, type DeadLetterReadOptions } from '../dead-letter-consumer.ts';

export const DEFAULT_GROUP_ID = 'ats-relay.alerts';

export interface AlertOptions extends DeadLetterReadOptions {
  /** Digest window, aligned to wall-clock multiples (ALERT_WINDOW_MS, default 5 min). */
  windowMs: number;
  /** Digests per `rateWindowMs` (ALERT_MAX_EMAILS_PER_HOUR, default 12); past it, aggregation carries over. */
  maxDigests: number;
  /** The rate cap's window (default 1 hour). */
  rateWindowMs: number;
  /** Recipients of every digest (ALERT_EMAIL_TO). */
  to: string[];
  /** companyId → recipients of that company's own digest (ALERT_COMPANY_RECIPIENTS). */
  companyRecipients: Record<string, string[]>;
  /** Where the DLQ is archived, for the "archived in" lines (S3_BUCKET, S3_PREFIX). */
  bucket: string;
  prefix: string;
  /** Distinct sample error messages per group (default 3). */
  maxSamples: number;
  /** Application ids listed per group (default 20). */
  maxApplicationIds: number;
  /** A claimed digest's lease (digest-log.ts): renewed before each SMTP attempt; past it, another process sends it. */
  claimLeaseMs: number;
  /** How often unsent digests of dead claimers are looked for (and sent). */
  recoveryIntervalMs: number;
  /** Sent digests are forgotten after this (the DLQ's retention: their records are gone by then). */
  digestRetentionMs: number;
  /** Throttling episode length that is alerted (ALERT_THROTTLED_AFTER_MS, default 1 h). */
  throttledAfterMs: number;
  /** How often throttling episodes are checked (default: a quarter of throttledAfterMs, at most 1 min). */
  throttleCheckIntervalMs: number;
  /** An episode without a deferral for this long is over (default 15 min: three times the longest parking). */
  throttleStaleAfterMs: number;
  /** Test hook (ALERT_TEST_CRASH_POINT): SIGKILL this process at that step of a digest send. Unset in production. */
  crashPoint: 'after-smtp' | 'after-mark' | undefined;
}

export function alertOptions(config: Config, overrides: Partial<AlertOptions> = {}): AlertOptions {
  return {
    ...deadLetterReadDefaults(config, DEFAULT_GROUP_ID),
    windowMs: config.alerts.windowMs,
    maxDigests: config.alerts.maxEmailsPerHour,
    rateWindowMs: 3_600_000,
    to: config.alerts.to,
    companyRecipients: config.alerts.companyRecipients,
    bucket: config.s3.bucket,
    prefix: config.s3.prefix,
    maxSamples: 3,
    maxApplicationIds: 20,
    initialBackoffMs: 1_000, // SMTP: first retry after 1 s …
    maxBackoffMs: 60_000, // … doubling up to 1 min
    claimLeaseMs: 120_000,
    recoveryIntervalMs: 30_000,
    digestRetentionMs: config.topics.dlqRetentionMs,
    throttledAfterMs: config.alerts.throttledAfterMs,
    throttleCheckIntervalMs: Math.min(60_000, Math.ceil(config.alerts.throttledAfterMs / 4)),
    throttleStaleAfterMs: 900_000,
    crashPoint: config.alerts.testCrashPoint,
    ...overrides,
  };
}
