/**
 * The header contract on retry-tier and DLQ records: UTF-8 strings, short, and only the latest
 * error, so headers do not grow per hop. Key and value bytes are never touched on the way; other
 * headers (e.g. a producer's trace id) travel unchanged. This is what people read in Kafka UI.
 */
import type { ErrorCode } from './error-codes.ts';
import type { RecordHeaders } from './kafka/index.ts';

export const HEADER = {
  tryCount: 'ats-try-count',
  dueAt: 'ats-due-at',
  firstFailureAt: 'ats-first-failure-at',
  errorCode: 'ats-error-code',
  errorMessage: 'ats-error-message',
  errorStatus: 'ats-error-status',
  originalTopic: 'ats-original-topic',
  originalPartition: 'ats-original-partition',
  originalOffset: 'ats-original-offset',
  originalTimestamp: 'ats-original-timestamp',
  failedBy: 'ats-failed-by',
  /** On DLQ records: `non_retriable` (refused at once, retrying cannot help) or `retries_exhausted`. */
  deadLetterReason: 'ats-dead-letter-reason',
  deferredFor: 'ats-deferred-for',
  deferralCount: 'ats-deferral-count',
  redriveId: 'ats-redrive-id',
  redriveCount: 'ats-redrive-count',
  redrivenAt: 'ats-redriven-at',
} as const;

/** Longest error message kept in a header (bytes of UTF-8). */
export const ERROR_MESSAGE_MAX_BYTES = 1024;

export type HeaderMap = Record<string, string>;

/** Record headers as the Kafka port carries them (Buffer | string | arrays) as plain strings; the last value of a repeated header wins. */
export function readHeaders(headers: RecordHeaders | undefined): HeaderMap {
  const out: HeaderMap = {};
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (v === undefined) continue;
    const last = Array.isArray(v) ? v[v.length - 1] : v;
    if (last !== undefined) out[k] = Buffer.isBuffer(last) ? last.toString('utf8') : String(last);
  }
  return out;
}

export function headerInt(headers: HeaderMap, name: string): number | undefined {
  const v = headers[name];
  if (v === undefined || !/^-?\d+$/.test(v)) return undefined;
  return Number(v);
}

export function tryCountOf(headers: HeaderMap): number {
  return Math.max(0, headerInt(headers, HEADER.tryCount) ?? 0);
}

/** Cut a UTF-8 string to at most `maxBytes` without splitting a character. */
export function clipUtf8(text: string, maxBytes = ERROR_MESSAGE_MAX_BYTES): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  let out = Buffer.from(text).subarray(0, maxBytes - 3).toString('utf8');
  // A split multi-byte character decodes to U+FFFD; drop it.
  out = out.replace(/\uFFFD+$/, '');
  return `${out}...`;
}

export type DeadLetterReason = 'non_retriable' | 'retries_exhausted';

export interface FailureInfo {
  code: ErrorCode;
  message: string;
  status: number | undefined;
}

export interface SourceRecord {
  topic: string;
  partition: number;
  offset: string;
  timestamp: string;
  headers: HeaderMap;
}

/** The source's headers plus where the record was first consumed (set on its first hop, then kept). */
function withOriginalCoordinates(source: SourceRecord): HeaderMap {
  const h = { ...source.headers };
  if (h[HEADER.originalTopic] === undefined) {
    h[HEADER.originalTopic] = source.topic;
    h[HEADER.originalPartition] = String(source.partition);
    h[HEADER.originalOffset] = source.offset;
    h[HEADER.originalTimestamp] = source.timestamp;
  }
  return h;
}

/**
 * Headers for the next hop: the source's own headers, the original coordinates from the first
 * failure (kept on later hops), the latest error replacing the previous one.
 */
export function failureHeaders(source: SourceRecord, failure: FailureInfo, next: { tryCount: number; dueAt?: number; failedBy: string; now: number; deadLetterReason?: DeadLetterReason }): HeaderMap {
  const h = withOriginalCoordinates(source);
  h[HEADER.firstFailureAt] ??= String(next.now);
  h[HEADER.tryCount] = String(next.tryCount);
  if (next.dueAt === undefined) delete h[HEADER.dueAt];
  else h[HEADER.dueAt] = String(next.dueAt);
  h[HEADER.errorCode] = failure.code;
  h[HEADER.errorMessage] = clipUtf8(failure.message);
  if (failure.status === undefined) delete h[HEADER.errorStatus];
  else h[HEADER.errorStatus] = String(failure.status);
  h[HEADER.failedBy] = next.failedBy;
  if (next.deadLetterReason === undefined) delete h[HEADER.deadLetterReason];
  else h[HEADER.deadLetterReason] = next.deadLetterReason;
  // This hop is a failure: a deferral mark from an earlier hop no longer describes it.
  delete h[HEADER.deferredFor];
  return h;
}

/**
 * Headers for a deferral hop (throttled, or another process holds the application): the record is
 * parked on a tier until `dueAt` without a try being used. `ats-try-count` and the latest error stay
 * as they were; `ats-deferred-for` says why this hop happened, `ats-deferral-count` how often.
 */
export function deferralHeaders(source: SourceRecord, next: { reason: string; dueAt: number; failedBy: string }): HeaderMap {
  const h = withOriginalCoordinates(source);
  h[HEADER.tryCount] = String(tryCountOf(source.headers));
  h[HEADER.dueAt] = String(next.dueAt);
  h[HEADER.deferredFor] = next.reason;
  h[HEADER.deferralCount] = String((headerInt(source.headers, HEADER.deferralCount) ?? 0) + 1);
  h[HEADER.failedBy] = next.failedBy;
  delete h[HEADER.deadLetterReason]; // a redriven dead letter parked again is no longer one
  return h;
}
