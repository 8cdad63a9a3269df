/**
 * One redrive run: read the source, filter, refuse records redriven too often (loop guard), cap the
 * rate, produce to the target with the key and value bytes unchanged, and record the run.
 *
 * The redriven record carries the original headers except the retry bookkeeping that would send it
 * straight back (ats-try-count is removed, i.e. 0; ats-due-at is removed, i.e. due now), plus
 * ats-redrive-id (this run), ats-redrive-count (previous + 1) and ats-redriven-at (epoch ms). The
 * dispatcher copies headers onto later hops, so a record that fails again reaches the DLQ with its
 * redrive count and the guard stops it after `maxRedrives`.
 *
 * Re-running the same redrive is safe: the dispatcher skips applications already delivered to the
 * integration (delivery log), so the ATS sees each application once.
 */
import type { ApplicationSubmitted } from '../../lib/application.ts';
import { HEADER, headerInt } from '../../lib/headers.ts';
import { ACKS_ALL, kafkaError, type RecordHeaders, type OutboundRecord, type Producer } from '../../lib/kafka/index.ts';
import type { Logger } from '../../lib/logger.ts';
import { SerdeError } from '../../lib/serde.ts';
import { RateLimiter } from '../../connectors/rate-limit.ts';
import { filtersJson, matchesEvent, matchesRecord, type EventFields, type RedriveFilters } from './filters.ts';
import type { RedriveRuns, RunCounts, RunStatus } from './history.ts';
import type { Progress } from './progress.ts';
import type { DeadLetter, RecordSource } from './source.ts';

export const DEFAULT_MAX_REDRIVES = 3;
/** Buffered bytes that trigger a send (well under the broker's default 1 MiB per record batch). */
const MAX_BATCH_BYTES = 512 * 1024;

export interface RedriveOptions {
  runId: string;
  source: RecordSource;
  filters: RedriveFilters;
  targetTopic: string;
  dryRun: boolean;
  /** A record whose ats-redrive-count is at least this is refused. */
  maxRedrives: number;
  /** Messages per second at most; undefined = as fast as the producer goes. */
  ratePerSecond: number | undefined;
  operator: string;
  codec: { decode(bytes: Buffer): Promise<ApplicationSubmitted> };
  /** Required unless dryRun. */
  producer: Producer | undefined;
  runs: RedriveRuns;
  logger: Logger;
  signal: AbortSignal;
  progress?: (total: number) => Progress;
  /** Matched records listed in the report (default 5). */
  sampleSize?: number;
  /** Refused records listed in the report (default 50; all are counted). */
  maxRefusedListed?: number;
  now?: () => number;
}

/** One record as the report shows it. */
export interface RecordSummary {
  partition: number;
  offset: string;
  deadAt: number;
  key: string | null;
  applicationId: string | undefined;
  companyId: string | undefined;
  platform: string | undefined;
  errorCode: string | undefined;
  redriveCount: number;
}

export interface GroupCount {
  companyId: string;
  platform: string;
  errorCode: string;
  count: number;
}

export interface RedriveReport extends RunCounts {
  id: string;
  source: string;
  targetTopic: string;
  dryRun: boolean;
  filters: Record<string, unknown>;
  maxRedrives: number;
  status: Exclude<RunStatus, 'running'>;
  error: string | undefined;
  /** Matched records whose value did not decode (only possible without payload filters). */
  undecodable: number;
  groups: GroupCount[];
  samples: RecordSummary[];
  refusedRecords: RecordSummary[];
  /** Payload filters were given, and this many records in range did not decode (so could not match). */
  undecodableSkipped: number;
}

export const UNDECODABLE = '(undecodable)';

/** Original headers minus retry bookkeeping, plus this run's redrive headers. Values stay bytes. */
export function redriveHeaders(raw: RecordHeaders, run: { redriveId: string; previousCount: number; now: number }): RecordHeaders {
  const drop = new Set<string>([HEADER.tryCount, HEADER.dueAt, HEADER.redriveId, HEADER.redriveCount, HEADER.redrivenAt]);
  const out: RecordHeaders = {};
  for (const [name, value] of Object.entries(raw)) if (value !== undefined && !drop.has(name)) out[name] = value;
  out[HEADER.redriveId] = run.redriveId;
  out[HEADER.redriveCount] = String(run.previousCount + 1);
  out[HEADER.redrivenAt] = String(run.now);
  return out;
}

function fieldsOf(value: unknown): EventFields | undefined {
  const v = value as Partial<Record<keyof EventFields, unknown>> | null;
  if (!v || typeof v.companyId !== 'string' || typeof v.platform !== 'string' || typeof v.applicationId !== 'string') return undefined;
  return { companyId: v.companyId, platform: v.platform, applicationId: v.applicationId };
}

function messageBytes(m: OutboundRecord): number {
  let n = (m.key?.length ?? 0) + (m.value?.length ?? 0);
  for (const [k, v] of Object.entries(m.headers ?? {})) n += k.length + (Array.isArray(v) ? v.reduce((s, x) => s + x.length, 0) : (v?.length ?? 0));
  return n;
}

export async function redrive(opts: RedriveOptions): Promise<RedriveReport> {
  const { filters, signal } = opts;
  const now = opts.now ?? Date.now;
  if (!opts.dryRun && !opts.producer) throw new Error('redrive: a producer is required unless dryRun');
  const sampleSize = opts.sampleSize ?? 5;
  const maxRefusedListed = opts.maxRefusedListed ?? 50;
  const counts: RunCounts = { scanned: 0, matched: 0, produced: 0, refused: 0, skipped: 0 };
  const groups = new Map<string, GroupCount>();
  const samples: RecordSummary[] = [];
  const refusedRecords: RecordSummary[] = [];
  let undecodable = 0;
  let undecodableSkipped = 0;

  const limiter = new RateLimiter(now);
  const bucket = opts.ratePerSecond ? { capacity: 1, refillPerSecond: opts.ratePerSecond } : null;
  // With a cap, small batches keep the flow smooth (about 5 sends a second); without, fill by bytes.
  const maxBatchRecords = opts.ratePerSecond ? Math.max(1, Math.min(500, Math.floor(opts.ratePerSecond / 5))) : 500;
  let pending: OutboundRecord[] = [];
  let pendingBytes = 0;

  async function flush(): Promise<void> {
    if (pending.length === 0) return;
    const messages = pending;
    pending = [];
    pendingBytes = 0;
    try {
      await opts.producer!.send({ topic: opts.targetTopic, acks: ACKS_ALL, messages });
    } catch (err) {
      throw kafkaError(err, `sending ${messages.length} record(s) to ${opts.targetTopic}`, { topic: opts.targetTopic });
    }
    counts.produced += messages.length;
  }

  async function eventOf(r: DeadLetter): Promise<EventFields | undefined> {
    if (r.archivedEvent !== undefined) return fieldsOf(r.archivedEvent);
    if (!r.value || r.value.length === 0) return undefined;
    try {
      return fieldsOf(await opts.codec.decode(r.value));
    } catch (err) {
      // Registry down: the run cannot tell what matches; stop rather than guess.
      if (err instanceof SerdeError && err.retriable) throw err;
      return undefined;
    }
  }

  async function each(r: DeadLetter): Promise<void> {
    counts.scanned++;
    progress?.update({ ...counts });
    if (!matchesRecord(filters, r)) {
      counts.skipped++;
      return;
    }
    const event = await eventOf(r);
    if (!matchesEvent(filters, event)) {
      counts.skipped++;
      if (!event) undecodableSkipped++;
      return;
    }
    counts.matched++;
    if (!event) undecodable++;
    const summary: RecordSummary = {
      partition: r.partition,
      offset: r.offset,
      deadAt: Number(r.timestamp),
      key: r.key ? r.key.toString('utf8') : null,
      applicationId: event?.applicationId,
      companyId: event?.companyId,
      platform: event?.platform,
      errorCode: r.headers[HEADER.errorCode],
      redriveCount: Math.max(0, headerInt(r.headers, HEADER.redriveCount) ?? 0),
    };
    const g = { companyId: event?.companyId ?? UNDECODABLE, platform: event?.platform ?? UNDECODABLE, errorCode: summary.errorCode ?? '-' };
    const gk = `${g.companyId}\u0000${g.platform}\u0000${g.errorCode}`;
    const group = groups.get(gk) ?? { ...g, count: 0 };
    group.count++;
    groups.set(gk, group);

    if (summary.redriveCount >= opts.maxRedrives) {
      counts.refused++;
      if (refusedRecords.length < maxRefusedListed) refusedRecords.push(summary);
      return;
    }
    if (samples.length < sampleSize) samples.push(summary);
    if (opts.dryRun) return;

    await limiter.acquire('redrive', bucket, { signal, maxWaitMs: Number.POSITIVE_INFINITY });
    const message: OutboundRecord = {
      key: r.key,
      value: r.value,
      headers: redriveHeaders(r.rawHeaders, { redriveId: opts.runId, previousCount: summary.redriveCount, now: now() }),
    };
    pending.push(message);
    pendingBytes += messageBytes(message);
    if (pending.length >= maxBatchRecords || pendingBytes >= MAX_BATCH_BYTES) await flush();
  }

  const filtersRecord = filtersJson(filters);
  await opts.runs.start({
    id: opts.runId,
    operator: opts.operator,
    source: opts.source.label,
    filters: filtersRecord,
    dryRun: opts.dryRun,
    targetTopic: opts.targetTopic,
    maxRedrives: opts.maxRedrives,
    ratePerSecond: opts.ratePerSecond,
  });

  let progress: Progress | undefined;
  let status: Exclude<RunStatus, 'running'> = 'succeeded';
  let error: string | undefined;
  try {
    const scan = await opts.source.plan();
    progress = opts.progress?.(scan.total);
    await opts.source.read(each, signal);
    await flush();
    if (signal.aborted) status = 'interrupted';
  } catch (err) {
    // Whatever is buffered was not sent; the counts say what was.
    pending = [];
    if (signal.aborted) status = 'interrupted';
    else {
      status = 'failed';
      error = (err as Error).message ?? String(err);
      opts.logger.debug({ err }, 'redrive failed');
    }
  } finally {
    progress?.done({ ...counts });
  }
  await opts.runs.finish(opts.runId, { ...counts, status, error });

  return {
    id: opts.runId,
    source: opts.source.label,
    targetTopic: opts.targetTopic,
    dryRun: opts.dryRun,
    filters: filtersRecord,
    maxRedrives: opts.maxRedrives,
    status,
    error,
    ...counts,
    undecodable,
    undecodableSkipped,
    groups: [...groups.values()].sort((a, b) => b.count - a.count || a.companyId.localeCompare(b.companyId) || a.platform.localeCompare(b.platform) || a.errorCode.localeCompare(b.errorCode)),
    samples,
    refusedRecords,
  };
}
