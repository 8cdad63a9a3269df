/**
 * Options of the DLQ → S3 sink, with their defaults.
 */
import type { Config } from '../../lib/config.ts';

export const DEFAULT_GROUP_ID = 'ats-relay.dlq-s3';

export interface BatchLimits {
  /** Records per object (DLQ_ARCHIVE_MAX_RECORDS, default 500). */
  maxRecords: number;
  /** Buffered bytes (key + value + headers) per object (DLQ_ARCHIVE_MAX_BYTES, default 5 MiB). */
  maxBytes: number;
  /** Longest the oldest buffered record waits before its object is written (DLQ_ARCHIVE_MAX_AGE_MS, default 60 s). */
  maxAgeMs: number;
}

export interface SinkOptions extends BatchLimits {
  groupId: string;
  topic: string;
  bucket: string;
  prefix: string;
  /** First wait after a failed S3 write; doubles up to `maxBackoffMs`. */
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** How long close() lets buffered records be written before leaving them uncommitted. */
  drainTimeoutMs: number;
  sessionTimeoutMs: number;
}

export function sinkOptions(config: Config, overrides: Partial<SinkOptions> = {}): SinkOptions {
  return {
    groupId: DEFAULT_GROUP_ID,
    topic: config.topics.dlq,
    bucket: config.s3.bucket,
    prefix: config.s3.prefix,
    maxRecords: config.archive.maxRecords,
    maxBytes: config.archive.maxBytes,
    maxAgeMs: config.archive.maxAgeMs,
    initialBackoffMs: 500,
    maxBackoffMs: 30_000,
    drainTimeoutMs: Math.max(1_000, config.http.shutdownTimeoutMs - 10_000),
    sessionTimeoutMs: config.kafka.sessionTimeoutMs,
    ...overrides,
  };
}
