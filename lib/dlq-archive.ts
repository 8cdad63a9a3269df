/**
 * The DLQ archive format: what the S3 sink writes and the redrive tool reads.
 *
 * An object holds the dead letters of one DLQ partition over a contiguous offset range, one JSON line
 * per record, gzipped, at `<prefix>/<topic>/dt=YYYY-MM-DD/partition=<p>/<firstOffset>-<lastOffset>.jsonl.gz`
 * (`dt` = UTC date of the first record's Kafka timestamp, so a rewrite lands on the same key prefix).
 *
 * A line keeps everything of the record: key, headers (readable and byte-exact), timestamp, the decoded
 * event as JSON for people and the raw value bytes (base64) so a redrive republishes exactly what failed.
 * Events never carry ATS credentials, so neither do archive lines.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { readHeaders, type HeaderMap } from './headers.ts';
import type { RecordHeaders } from './kafka/index.ts';

export const ARCHIVE_FORMAT_VERSION = 1;

/** A DLQ record as consumed (the port's consumed-record fields plus its coordinates). */
export interface DeadLetterRecord {
  topic: string;
  partition: number;
  offset: string;
  /** Kafka timestamp, epoch ms as a string. */
  timestamp: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: RecordHeaders;
}

/** One archive line, as stored. */
export interface ArchiveLine {
  v: number;
  topic: string;
  partition: number;
  offset: string;
  timestamp: string;
  /** The key as UTF-8 when it is valid UTF-8 (readability); `keyBase64` is authoritative. */
  key: string | null;
  keyBase64: string | null;
  /** Readable headers (UTF-8, last value of a repeated header wins). */
  headers: HeaderMap;
  /** Every header value in order, base64 — what a redrive sends. */
  rawHeaders: Array<[string, string]>;
  /** The decoded event, or null when the value could not be decoded (see decodeError). */
  value: unknown;
  decodeError?: string;
  /** The value bytes exactly as they were on the DLQ (null for a tombstone). */
  valueBase64: string | null;
}

/** An archive line read back, with bytes restored. */
export interface ArchivedRecord {
  topic: string;
  partition: number;
  offset: string;
  timestamp: string;
  key: Buffer | null;
  value: Buffer | null;
  /** Readable headers (strings). */
  headers: HeaderMap;
  /** Byte-exact headers for producing the record again (as the port carries them). */
  rawHeaders: RecordHeaders;
  decoded: unknown;
  decodeError: string | undefined;
}

export type Decoded = { value: unknown } | { value: null; decodeError: string };

function utf8OrNull(bytes: Buffer): string | null {
  const text = bytes.toString('utf8');
  return Buffer.from(text, 'utf8').equals(bytes) ? text : null;
}

function rawHeaderPairs(headers: RecordHeaders): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [name, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) out.push([name, Buffer.from(one).toString('base64')]);
  }
  return out;
}

export function toArchiveLine(record: DeadLetterRecord, decoded: Decoded): ArchiveLine {
  return {
    v: ARCHIVE_FORMAT_VERSION,
    topic: record.topic,
    partition: record.partition,
    offset: record.offset,
    timestamp: record.timestamp,
    key: record.key ? utf8OrNull(record.key) : null,
    keyBase64: record.key ? record.key.toString('base64') : null,
    headers: readHeaders(record.headers),
    rawHeaders: rawHeaderPairs(record.headers),
    value: decoded.value,
    ...('decodeError' in decoded ? { decodeError: decoded.decodeError } : {}),
    valueBase64: record.value ? record.value.toString('base64') : null,
  };
}

export function encodeArchiveLine(record: DeadLetterRecord, decoded: Decoded): string {
  return JSON.stringify(toArchiveLine(record, decoded));
}

export function decodeArchiveLine(line: string): ArchivedRecord {
  const l = JSON.parse(line) as ArchiveLine;
  if (l.v !== ARCHIVE_FORMAT_VERSION) throw new Error(`unsupported archive line version ${String(l.v)}`);
  const rawHeaders: Record<string, Buffer | Buffer[]> = {};
  for (const [name, b64] of l.rawHeaders) {
    const bytes = Buffer.from(b64, 'base64');
    const prev = rawHeaders[name];
    rawHeaders[name] = prev === undefined ? bytes : Array.isArray(prev) ? [...prev, bytes] : [prev, bytes];
  }
  return {
    topic: l.topic,
    partition: l.partition,
    offset: l.offset,
    timestamp: l.timestamp,
    key: l.keyBase64 === null ? null : Buffer.from(l.keyBase64, 'base64'),
    value: l.valueBase64 === null ? null : Buffer.from(l.valueBase64, 'base64'),
    headers: l.headers,
    rawHeaders,
    decoded: l.value,
    decodeError: l.decodeError,
  };
}

/** The gzipped JSON-lines body of an archive object. */
export function buildArchiveObject(lines: readonly string[]): Buffer {
  return gzipSync(Buffer.from(lines.map((l) => `${l}\n`).join(''), 'utf8'));
}

export function parseArchiveObject(gz: Buffer | Uint8Array): ArchivedRecord[] {
  return gunzipSync(gz)
    .toString('utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map(decodeArchiveLine);
}

// --- keys ------------------------------------------------------------------------------------------

export interface ArchiveKeyParts {
  prefix: string;
  topic: string;
  /** YYYY-MM-DD (UTC). */
  date: string;
  partition: number;
  firstOffset: string;
  lastOffset: string;
}

/** `YYYY-MM-DD` (UTC) of an epoch-ms timestamp. */
export function archiveDate(timestampMs: number | string): string {
  return new Date(Number(timestampMs)).toISOString().slice(0, 10);
}

function join(...parts: string[]): string {
  return parts.filter((p) => p !== '').join('/');
}

/** Folder of one partition's objects of one day: `<prefix>/<topic>/dt=<date>/partition=<p>/`. */
export function archivePartitionPrefix(parts: Omit<ArchiveKeyParts, 'firstOffset' | 'lastOffset'>): string {
  return `${join(parts.prefix, parts.topic, `dt=${parts.date}`, `partition=${parts.partition}`)}/`;
}

export function archiveKey(parts: ArchiveKeyParts): string {
  return `${archivePartitionPrefix(parts)}${parts.firstOffset}-${parts.lastOffset}.jsonl.gz`;
}

/** Prefix matching every object of the partition and day that starts at `firstOffset` (whatever its end). */
export function archiveKeyFirstOffsetPrefix(parts: Omit<ArchiveKeyParts, 'lastOffset'>): string {
  return `${archivePartitionPrefix(parts)}${parts.firstOffset}-`;
}

const KEY_PATTERN = /^(?:(.*)\/)?([^/]+)\/dt=(\d{4}-\d{2}-\d{2})\/partition=(\d+)\/(\d+)-(\d+)\.jsonl\.gz$/;

/** The parts of an archive key, or undefined when the key is not one. */
export function parseArchiveKey(key: string): ArchiveKeyParts | undefined {
  const m = KEY_PATTERN.exec(key);
  if (!m) return undefined;
  return { prefix: m[1] ?? '', topic: m[2]!, date: m[3]!, partition: Number(m[4]), firstOffset: m[5]!, lastOffset: m[6]! };
}
