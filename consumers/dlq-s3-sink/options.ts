/**
 * Options of the DLQ → S3 sink, with their defaults (the shared ones in ../dead-letter-consumer.ts).
 */
import type { Config } from '../../lib/config.ts';
import { deadLetterReadDefaults, type DeadLetterReadOptions } from '../dead-letter-consumer.ts';

export const DEFAULT_GROUP_ID = 'ats-relay.dlq-s3';

export interface BatchLimits {
  /** Records per object (DLQ_ARCHIVE_MAX_RECORDS, default 500). */
  maxRecords: number;
  /** Buffered bytes (key + value + headers) per object (DLQ_ARCHIVE_MAX_BYTES, default 5 MiB). */
  maxBytes: number;
  /** Longest the oldest buffered record waits before its object is written (DLQ_ARCHIVE_MAX_AGE_MS, default 60 s). */
  maxAgeMs: number;
}

export interface SinkOptions extends BatchLimits, DeadLetterReadOptions {
  /** The bucket (S3_BUCKET, default ats-relay-dlq). */
  bucket: string;
  /** Key prefix of archive objects (S3_PREFIX, default dlq-archive). */
  prefix: string;
}

export function sinkOptions(config: Config, overrides: Partial<SinkOptions> = {}): SinkOptions {
  return {
    ...deadLetterReadDefaults(config, DEFAULT_GROUP_ID),
    bucket: config.s3.bucket,
    prefix: config.s3.prefix,
    maxRecords: config.archive.maxRecords,
    maxBytes: config.archive.maxBytes,
    maxAgeMs: config.archive.maxAgeMs,
    initialBackoffMs: 500, // S3 writes: first retry after 0.5 s …
    maxBackoffMs: 30_000, // … doubling up to 30 s
    ...overrides,
  };
}
