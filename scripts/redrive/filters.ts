/**
 * Which dead letters a redrive selects. Every given filter must match (AND); the values of one
 * repeated filter are alternatives (OR).
 *
 *   --company, --platform, --application-id   the decoded event (companyId, platform, applicationId)
 *   --error-code                              header ats-error-code (the latest failure)
 *   --since (inclusive), --until (exclusive)  the record's Kafka timestamp on the DLQ, i.e. when it
 *                                             was dead-lettered (an alert digest's --since is the
 *                                             group's first failure, which is never later)
 *   --partition, --offset                     the record's DLQ partition and offset
 *
 * A record whose value does not decode can only match when no payload filter is given.
 */
import { readFile } from 'node:fs/promises';
import { codesRaisedBy, isErrorCode, type ErrorCode } from '../../lib/error-codes.ts';
import { HEADER } from '../../lib/headers.ts';
import { PLATFORMS } from '../../registry/integration.ts';
import { UsageError } from '../../lib/cli.ts';

export interface OffsetRange {
  /** Inclusive; undefined = from the start. */
  from: number | undefined;
  /** Inclusive; undefined = to the end. */
  to: number | undefined;
}

export interface RedriveFilters {
  companies: string[];
  platforms: string[];
  errorCodes: ErrorCode[];
  /** Epoch ms, inclusive. */
  since: number | undefined;
  /** Epoch ms, exclusive. */
  until: number | undefined;
  applicationIds: string[];
  partitions: number[];
  offsets: OffsetRange | undefined;
}

/** The decoded event fields filters look at (undefined when the value does not decode). */
export interface EventFields {
  companyId: string;
  platform: string;
  applicationId: string;
}

export interface FilterInput {
  company?: string[] | undefined;
  platform?: string[] | undefined;
  'error-code'?: string[] | undefined;
  since?: string | undefined;
  until?: string | undefined;
  'application-id'?: string[] | undefined;
  'application-ids-file'?: string | undefined;
  partition?: string[] | undefined;
  offset?: string | undefined;
}

/** ISO 8601 (`2025-05-01T10:00:00Z`, `2025-05-01`) or epoch milliseconds. */
export function parseTime(flag: string, value: string): number {
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(ms)) throw new UsageError(`--${flag}: expected an ISO 8601 time (e.g. 2025-05-01T10:00:00Z) or epoch ms, got "${value}"`);
  return ms;
}

function parsePartitions(values: string[]): number[] {
  const out = new Set<number>();
  for (const part of values.flatMap((v) => v.split(','))) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!m) throw new UsageError(`--partition: expected a partition number, a list (0,2) or a range (0-3), got "${part}"`);
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (to < from) throw new UsageError(`--partition: range ${part} ends before it starts`);
    for (let p = from; p <= to; p++) out.add(p);
  }
  return [...out].sort((a, b) => a - b);
}

function parseOffsets(value: string): OffsetRange {
  const m = /^\s*(\d+)?\s*(-)?\s*(\d+)?\s*$/.exec(value);
  if (!m || (m[1] === undefined && m[3] === undefined) || (m[2] === undefined && m[3] !== undefined)) {
    throw new UsageError(`--offset: expected <n>, <from>-<to>, <from>- or -<to> (inclusive), got "${value}"`);
  }
  const from = m[1] === undefined ? undefined : Number(m[1]);
  const to = m[2] === undefined ? from : m[3] === undefined ? undefined : Number(m[3]);
  if (from !== undefined && to !== undefined && to < from) throw new UsageError(`--offset: range ${value} ends before it starts`);
  return { from, to };
}

/** Application ids from a file: one per line; blank lines and `#` comments ignored. */
async function readIdsFile(file: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--application-ids-file: cannot read ${file}: ${(err as Error).message}`);
  }
  return text
    .split(/\r?\n/)
    .map((l) => l.replace(/#.*$/, '').trim())
    .filter(Boolean);
}

export async function parseFilters(input: FilterInput): Promise<RedriveFilters> {
  const platforms = input.platform ?? [];
  for (const p of platforms) {
    if (!(PLATFORMS as readonly string[]).includes(p)) throw new UsageError(`--platform: unknown platform "${p}" (one of ${PLATFORMS.join(', ')})`);
  }
  const errorCodes = input['error-code'] ?? [];
  for (const c of errorCodes) {
    if (!isErrorCode(c)) throw new UsageError(`--error-code: "${c}" is not an ats-relay error code (see the README's error-code table; e.g. ${codesRaisedBy('connector').slice(0, 3).join(', ')})`);
  }
  const since = input.since === undefined ? undefined : parseTime('since', input.since);
  const until = input.until === undefined ? undefined : parseTime('until', input.until);
  if (since !== undefined && until !== undefined && until <= since) throw new UsageError('--until must be later than --since');
  const fileIds = input['application-ids-file'] ? await readIdsFile(input['application-ids-file']) : [];
  return {
    companies: input.company ?? [],
    platforms,
    errorCodes: errorCodes.filter(isErrorCode),
    since,
    until,
    applicationIds: [...new Set([...(input['application-id'] ?? []), ...fileIds])],
    partitions: parsePartitions(input.partition ?? []),
    offsets: input.offset === undefined ? undefined : parseOffsets(input.offset),
  };
}

/** True when a filter needs the decoded event (so undecodable records cannot match). */
export function needsPayload(f: RedriveFilters): boolean {
  return f.companies.length > 0 || f.platforms.length > 0 || f.applicationIds.length > 0;
}

/** Whether a DLQ partition can hold matches at all (sources use it to skip whole partitions/objects). */
export function partitionSelected(f: RedriveFilters, partition: number): boolean {
  return f.partitions.length === 0 || f.partitions.includes(partition);
}

/** Whether an offset range [first, last] overlaps the --offset filter. */
export function offsetRangeSelected(f: RedriveFilters, first: number, last: number): boolean {
  if (!f.offsets) return true;
  return (f.offsets.from === undefined || last >= f.offsets.from) && (f.offsets.to === undefined || first <= f.offsets.to);
}

export interface Candidate {
  partition: number;
  offset: string;
  timestamp: string;
  headers: Record<string, string>;
}

/** The filters that read only coordinates, time and headers. */
export function matchesRecord(f: RedriveFilters, r: Candidate): boolean {
  const offset = Number(r.offset);
  const ts = Number(r.timestamp);
  if (!partitionSelected(f, r.partition)) return false;
  if (f.offsets && ((f.offsets.from !== undefined && offset < f.offsets.from) || (f.offsets.to !== undefined && offset > f.offsets.to))) return false;
  if (f.since !== undefined && ts < f.since) return false;
  if (f.until !== undefined && ts >= f.until) return false;
  if (f.errorCodes.length && !(f.errorCodes as readonly string[]).includes(r.headers[HEADER.errorCode] ?? '')) return false;
  return true;
}

/** The filters on the decoded event; `event` undefined (undecodable) matches only when none is given. */
export function matchesEvent(f: RedriveFilters, event: EventFields | undefined): boolean {
  if (!needsPayload(f)) return true;
  if (!event) return false;
  if (f.companies.length && !f.companies.includes(event.companyId)) return false;
  if (f.platforms.length && !f.platforms.includes(event.platform)) return false;
  if (f.applicationIds.length && !idSet(f).has(event.applicationId)) return false;
  return true;
}

const idSets = new WeakMap<RedriveFilters, ReadonlySet<string>>();
function idSet(f: RedriveFilters): ReadonlySet<string> {
  let set = idSets.get(f);
  if (!set) idSets.set(f, (set = new Set(f.applicationIds)));
  return set;
}

/** The filters as stored with the run (JSON) and printed in reports; empty filters left out. */
export function filtersJson(f: RedriveFilters): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (f.companies.length) out.company = f.companies;
  if (f.platforms.length) out.platform = f.platforms;
  if (f.errorCodes.length) out.errorCode = f.errorCodes;
  if (f.since !== undefined) out.since = new Date(f.since).toISOString();
  if (f.until !== undefined) out.until = new Date(f.until).toISOString();
  if (f.applicationIds.length) out.applicationIds = f.applicationIds.length <= 20 ? f.applicationIds : { count: f.applicationIds.length, first: f.applicationIds.slice(0, 20) };
  if (f.partitions.length) out.partition = f.partitions;
  if (f.offsets) out.offset = `${f.offsets.from ?? ''}-${f.offsets.to ?? ''}`;
  return out;
}

export function describeFilters(f: RedriveFilters): string {
  const parts = Object.entries(filtersJson(f)).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return parts.length ? parts.join(' ') : '(none: every dead letter)';
}
