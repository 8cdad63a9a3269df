/**
 * The S3 client for the DLQ archive, built from `config.s3`. Empty endpoint / keys fall back to
 * AWS defaults (regional endpoint, default credential chain). Callers own retries of whole
 * operations; the SDK's own attempts are bounded so an outage surfaces quickly.
 */
import { S3Client } from '@aws-sdk/client-s3';
import type { Config } from './config.ts';

export interface S3Options {
  /** SDK attempts per request (default 3). */
  maxAttempts?: number;
  /** Connect / request timeouts in ms (default 5 s / 30 s). */
  connectionTimeoutMs?: number;
  requestTimeoutMs?: number;
}

export function createS3Client(s3: Config['s3'], opts: S3Options = {}): S3Client {
  return new S3Client({
    region: s3.region,
    forcePathStyle: s3.forcePathStyle,
    maxAttempts: opts.maxAttempts ?? 3,
    requestHandler: { connectionTimeout: opts.connectionTimeoutMs ?? 5_000, requestTimeout: opts.requestTimeoutMs ?? 30_000 },
    ...(s3.endpoint ? { endpoint: s3.endpoint } : {}),
    ...(s3.accessKeyId && s3.secretAccessKey ? { credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } } : {}),
  });
}
