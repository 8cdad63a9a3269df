/**
 * Options of the alert consumer, with their defaults.
 */
import type { Config } from '../../lib/config.ts';

export const DEFAULT_GROUP_ID = 'ats-relay.alerts';

export interface AlertOptions {
  groupId: string;
  topic: string;
  /** Digest window, aligned to wall-clock multiples (ALERT_WINDOW_MS, default 5 min). */
  windowMs: number;
  /** Digests per `rateWindowMs` (ALERT_MAX_EMAILS_PER_HOUR, default 12); past it, aggregation carries over. */
  maxDigests: number;
  rateWindowMs: number;
  /** Recipients of every digest (ALERT_EMAIL_TO). */
  to: string[];
  /** companyId → recipients of that company's own digest (ALERT_COMPANY_RECIPIENTS). */
  companyRecipients: Record<string, string[]>;
  /** Where the DLQ is archived, for the "archived in" lines. */
  bucket: string;
  prefix: string;
  /** Distinct sample error messages per group (default 3). */
  maxSamples: number;
  /** Application ids listed per group (default 20). */
  maxApplicationIds: number;
  /** First wait after a failed SMTP send; doubles up to `maxBackoffMs`. */
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** How long close() waits for a digest being sent. */
  drainTimeoutMs: number;
  sessionTimeoutMs: number;
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
    groupId: DEFAULT_GROUP_ID,
    topic: config.topics.dlq,
    windowMs: config.alerts.windowMs,
    maxDigests: config.alerts.maxEmailsPerHour,
    rateWindowMs: 3_600_000,
    to: config.alerts.to,
    companyRecipients: config.alerts.companyRecipients,
    bucket: config.s3.bucket,
    prefix: config.s3.prefix,
    maxSamples: 3,
    maxApplicationIds: 20,
    initialBackoffMs: 1_000,
    maxBackoffMs: 60_000,
    drainTimeoutMs: Math.max(1_000, config.http.shutdownTimeoutMs - 10_000),
    sessionTimeoutMs: config.kafka.sessionTimeoutMs,
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
