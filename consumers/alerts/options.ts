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
    ...overrides,
  };
}
