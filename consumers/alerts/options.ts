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
    ...overrides,
  };
}
