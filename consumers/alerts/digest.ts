/**
 * Alert digests, pure: dead letters aggregated by company, platform and error code, and the digest
 * mail rendered from the aggregate (text and HTML). No I/O here; index.ts consumes, times windows,
 * sends and commits.
 *
 * Aggregates are kept per DLQ partition so that a partition taken away by a rebalance can be
 * dropped from the digest (its new owner counts those records), and each partition's counted
 * offsets form one contiguous range: a record at or below the range's end is a re-read, never
 * counted twice in a digest.
 */
import { archiveDate } from '../../lib/dlq-archive.ts';
import { HEADER, headerInt, type HeaderMap } from '../../lib/headers.ts';
import { tpKey } from '../../lib/kafka/index.ts';
import type { ThrottledIntegration } from '../dispatcher/throttle-log.ts';

export const UNKNOWN = 'unknown';

/** What a digest needs from one dead letter. */
export interface DeadLetterFact {
  topic: string;
  partition: number;
  offset: string;
  /** When the record entered the DLQ (its Kafka timestamp, epoch ms). */
  deadAt: number;
  /** First failure of the application (header `ats-first-failure-at`, else deadAt). */
  firstFailureAt: number;
  companyId: string;
  platform: string;
  errorCode: string;
  errorMessage: string | undefined;
  applicationId: string | undefined;
  /** Refused at once (a final answer) rather than after the retry ladder ran out. */
  refusedAtOnce: boolean;
}

export interface DecodedFields {
  companyId?: string;
  platform?: string;
  applicationId?: string;
}

export function factOf(
  record: { topic: string; partition: number; offset: string; timestamp: string; headers: HeaderMap },
  decoded: DecodedFields | undefined,
): DeadLetterFact {
  const deadAt = Number(record.timestamp);
  return {
    topic: record.topic,
    partition: record.partition,
    offset: record.offset,
    deadAt,
    firstFailureAt: Math.min(headerInt(record.headers, HEADER.firstFailureAt) ?? deadAt, deadAt),
    companyId: decoded?.companyId || UNKNOWN,
    platform: decoded?.platform || UNKNOWN,
    errorCode: record.headers[HEADER.errorCode] || UNKNOWN,
    errorMessage: record.headers[HEADER.errorMessage],
    applicationId: decoded?.applicationId,
    // Records dead-lettered before the reason header existed: one try means nothing was retried.
    refusedAtOnce: (record.headers[HEADER.deadLetterReason] ?? ((headerInt(record.headers, HEADER.tryCount) ?? 1) <= 1 ? 'non_retriable' : '')) === 'non_retriable',
  };
}

export interface DigestLimits {
  /** Distinct sample error messages kept per group. */
  maxSamples: number;
  /** Application ids listed per group (the rest are counted). */
  maxApplicationIds: number;
}

/** Where a group's records sit in the archive: per partition, the offset range and the record dates. */
export interface ArchiveSpan {
  topic: string;
  partition: number;
  firstOffset: string;
  lastOffset: string;
  dates: string[];
}

/** What a group counts, in one partition's part and in the summary over partitions alike. */
export interface GroupCounts {
  companyId: string;
  platform: string;
  errorCode: string;
  count: number;
  /** Of `count`, refused at once (the rest exhausted their retries). */
  refused: number;
  firstFailureAt: number;
  lastFailureAt: number;
  samples: string[];
}

export interface GroupSummary extends GroupCounts {
  applicationIds: string[];
  /** Affected application ids not listed (over the cap). */
  moreApplicationIds: number;
  archive: ArchiveSpan[];
}

interface GroupPart extends GroupCounts {
  applicationIds: Set<string>;
  moreApplicationIds: number;
  firstOffset: string;
  lastOffset: string;
  dates: Set<string>;
}

interface PartitionPart {
  topic: string;
  partition: number;
  firstOffset: string;
  lastOffset: string;
  groups: Map<string, GroupPart>;
}

const groupKey = (f: { companyId: string; platform: string; errorCode: string }): string => `${f.companyId}\u0000${f.platform}\u0000${f.errorCode}`;

export class Digest {
  private readonly parts = new Map<string, PartitionPart>();
  /** Every fact counted, so that a digest can be rebuilt without records another digest reported (digest-log.ts). */
  private facts: DeadLetterFact[] = [];
  private count = 0;
  /** Process time of the first record counted (for the mail's period). */
  startedAt: number | undefined;

  constructor(private readonly limits: DigestLimits) {}

  get total(): number {
    return this.count;
  }

  get empty(): boolean {
    return this.count === 0;
  }

  /** Count a dead letter; false when this digest already counted it (a re-read). */
  add(fact: DeadLetterFact, now: number): boolean {
    const key = tpKey(fact.topic, fact.partition);
    let part = this.parts.get(key);
    if (part && Number(fact.offset) <= Number(part.lastOffset)) return false;
    if (!part) {
      part = { topic: fact.topic, partition: fact.partition, firstOffset: fact.offset, lastOffset: fact.offset, groups: new Map() };
      this.parts.set(key, part);
    }
    part.lastOffset = fact.offset;
    const gk = groupKey(fact);
    let g = part.groups.get(gk);
    if (!g) {
      g = {
        companyId: fact.companyId,
        platform: fact.platform,
        errorCode: fact.errorCode,
        count: 0,
        refused: 0,
        firstFailureAt: fact.firstFailureAt,
        lastFailureAt: fact.deadAt,
        samples: [],
        applicationIds: new Set(),
        moreApplicationIds: 0,
        firstOffset: fact.offset,
        lastOffset: fact.offset,
        dates: new Set(),
      };
      part.groups.set(gk, g);
    }
    g.count++;
    if (fact.refusedAtOnce) g.refused++;
    g.firstFailureAt = Math.min(g.firstFailureAt, fact.firstFailureAt);
    g.lastFailureAt = Math.max(g.lastFailureAt, fact.deadAt);
    g.lastOffset = fact.offset;
    if (Number.isFinite(fact.deadAt)) g.dates.add(archiveDate(fact.deadAt));
    if (fact.errorMessage && g.samples.length < this.limits.maxSamples && !g.samples.includes(fact.errorMessage)) g.samples.push(fact.errorMessage);
    if (fact.applicationId && !g.applicationIds.has(fact.applicationId)) {
      if (g.applicationIds.size < this.limits.maxApplicationIds) g.applicationIds.add(fact.applicationId);
      else g.moreApplicationIds++;
    }
    this.count++;
    this.facts.push(fact);
    this.startedAt ??= now;
    return true;
  }

  /**
   * This digest without the records at or below `coveredUpTo` of their partition (tpKey → offset):
   * what is left to report when another digest already counted part of it.
   */
  without(coveredUpTo: Map<string, number>): Digest {
    const rest = new Digest(this.limits);
    for (const fact of this.facts) {
      const covered = coveredUpTo.get(tpKey(fact.topic, fact.partition));
      if (covered === undefined || Number(fact.offset) > covered) rest.add(fact, this.startedAt ?? 0);
    }
    rest.startedAt = this.startedAt;
    return rest;
  }

  /** Per partition, the offsets this digest counted (one contiguous range each). */
  ranges(): Array<{ topic: string; partition: number; firstOffset: string; lastOffset: string }> {
    return [...this.parts.values()].map((p) => ({ topic: p.topic, partition: p.partition, firstOffset: p.firstOffset, lastOffset: p.lastOffset }));
  }

  /** Forget a partition (revoked: its new owner counts these records). Returns the records dropped. */
  dropPartition(topic: string, partition: number): number {
    const part = this.parts.get(tpKey(topic, partition));
    if (!part) return 0;
    let n = 0;
    for (const g of part.groups.values()) n += g.count;
    this.parts.delete(tpKey(topic, partition));
    this.count -= n;
    this.facts = this.facts.filter((f) => f.topic !== topic || f.partition !== partition);
    return n;
  }

  /** Offsets to commit once this digest is sent: each partition's last counted offset + 1. */
  commitOffsets(): Array<{ topic: string; partition: number; offset: string }> {
    return [...this.parts.values()].map((p) => ({ topic: p.topic, partition: p.partition, offset: String(Number(p.lastOffset) + 1) }));
  }

  /** Groups across partitions, biggest first (ties: company, platform, code). */
  groups(filter?: (companyId: string) => boolean): GroupSummary[] {
    const merged = new Map<string, GroupSummary & { ids: Set<string> }>();
    for (const part of this.parts.values()) {
      for (const [gk, g] of part.groups) {
        if (filter && !filter(g.companyId)) continue;
        let m = merged.get(gk);
        if (!m) {
          m = {
            companyId: g.companyId,
            platform: g.platform,
            errorCode: g.errorCode,
            count: 0,
            refused: 0,
            firstFailureAt: g.firstFailureAt,
            lastFailureAt: g.lastFailureAt,
            samples: [],
            applicationIds: [],
            moreApplicationIds: 0,
            archive: [],
            ids: new Set(),
          };
          merged.set(gk, m);
        }
        m.count += g.count;
        m.refused += g.refused;
        m.firstFailureAt = Math.min(m.firstFailureAt, g.firstFailureAt);
        m.lastFailureAt = Math.max(m.lastFailureAt, g.lastFailureAt);
        for (const s of g.samples) if (m.samples.length < this.limits.maxSamples && !m.samples.includes(s)) m.samples.push(s);
        m.moreApplicationIds += g.moreApplicationIds;
        for (const id of g.applicationIds) {
          if (m.ids.has(id)) continue;
          if (m.ids.size < this.limits.maxApplicationIds) m.ids.add(id);
          else m.moreApplicationIds++;
        }
        m.archive.push({ topic: part.topic, partition: part.partition, firstOffset: g.firstOffset, lastOffset: g.lastOffset, dates: [...g.dates].sort() });
      }
    }
    return [...merged.values()]
      .map(({ ids, ...g }) => ({ ...g, applicationIds: [...ids], archive: g.archive.sort((a, b) => a.partition - b.partition) }))
      .sort((a, b) => b.count - a.count || a.companyId.localeCompare(b.companyId) || a.platform.localeCompare(b.platform) || a.errorCode.localeCompare(b.errorCode));
  }

  /** Companies with at least one record in this digest. */
  companies(): Set<string> {
    const out = new Set<string>();
    for (const part of this.parts.values()) for (const g of part.groups.values()) out.add(g.companyId);
    return out;
  }
}

// --- rendering -------------------------------------------------------------------------------------

export interface RenderContext {
  /** Period covered: first record counted … digest sealed. */
  from: number;
  to: number;
  windowMs: number;
  bucket: string;
  prefix: string;
  /** Set for a company's own digest (its recipients see only their groups). */
  company?: string;
  /** Windows that ended while the rate cap held this digest back. */
  deferredWindows: number;
  /** Integrations throttled right now: a section of their own, never counted as dead letters. */
  throttled?: ThrottledSummary[];
}

/** An integration in a throttling episode (integration_throttling), as a digest shows it. */
export type ThrottledSummary = Omit<ThrottledIntegration, 'alertedAt'>;

/** One line for a throttled integration: since when, how many deferrals, when it tries again. */
export function throttledLine(t: ThrottledSummary): string {
  const name = t.integrationName ? `${t.integrationName} (${t.integrationId})` : t.integrationId;
  const next = t.nextAttemptAt !== undefined ? `, next attempt ${iso(t.nextAttemptAt)}` : '';
  return `${t.companyId} ${t.platform} integration ${name}: throttled since ${iso(t.throttledSince)}, ${t.deferrals} deferred${next}`;
}

const THROTTLED_HEADING = 'Throttled (not failures: these applications wait for the ATS rate limit, none is in the dead-letter queue)';

export interface RenderedDigest {
  subject: string;
  text: string;
  html: string;
}

const iso = (ms: number): string => new Date(ms).toISOString();

function shellArg(value: string): string {
  return /^[\w.@:+-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

export function redriveCommand(g: Pick<GroupSummary, 'companyId' | 'platform' | 'errorCode' | 'firstFailureAt'>): string {
  return `npm run redrive -- --company ${shellArg(g.companyId)} --platform ${shellArg(g.platform)} --error-code ${shellArg(g.errorCode)} --since ${iso(g.firstFailureAt)}`;
}

export function archiveLocations(g: Pick<GroupSummary, 'archive'>, ctx: Pick<RenderContext, 'bucket' | 'prefix'>): string[] {
  return g.archive.map((a) => {
    const base = `s3://${ctx.bucket}/${[ctx.prefix, a.topic].filter(Boolean).join('/')}`;
    const dates = a.dates.length ? a.dates : ['?'];
    const offsets = a.firstOffset === a.lastOffset ? `offset ${a.firstOffset}` : `offsets ${a.firstOffset}–${a.lastOffset}`;
    return `${dates.map((d) => `${base}/dt=${d}/partition=${a.partition}/`).join(' , ')} (${offsets})`;
  });
}

function groupLabel(g: GroupSummary): string {
  return `${g.companyId} ${g.platform}/${g.errorCode}`;
}

export function renderSubject(groups: GroupSummary[], ctx: Pick<RenderContext, 'company'>): string {
  const total = groups.reduce((n, g) => n + g.count, 0);
  const top = groups.slice(0, 3).map((g) => `${ctx.company ? `${g.platform}/${g.errorCode}` : groupLabel(g)} ×${g.count}`);
  const more = groups.length > 3 ? `, +${groups.length - 3} more group${groups.length - 3 === 1 ? '' : 's'}` : '';
  const who = ctx.company ? `${ctx.company}: ` : '';
  return `[ats-relay] ${who}${total} dead letter${total === 1 ? '' : 's'}: ${top.join(', ')}${more}`;
}

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** How a group's records ended up here, in words: refused at once, retries exhausted, or both. */
function howItEnded(g: Pick<GroupCounts, 'count' | 'refused'>): string {
  const exhausted = g.count - g.refused;
  if (exhausted === 0) return 'refused at once';
  if (g.refused === 0) return 'retries exhausted';
  return `${g.refused} refused at once, ${exhausted} after retries ran out`;
}

function headline(groups: GroupCounts[], total: number, company: string | undefined): string {
  const refused = groups.reduce((n, g) => n + g.refused, 0);
  const exhausted = total - refused;
  const parts = [
    refused ? `${refused} refused at once (retrying cannot help: fix the cause, then redrive)` : '',
    exhausted ? `${exhausted} exhausted ${exhausted === 1 ? 'its' : 'their'} retries` : '',
  ].filter(Boolean);
  return `${total} application${total === 1 ? ' is' : 's are'} in the dead-letter queue${company ? ` for ${company}` : ''}: ${parts.join('; ')}`;
}

export function renderDigest(groups: GroupSummary[], ctx: RenderContext): RenderedDigest {
  const total = groups.reduce((n, g) => n + g.count, 0);
  const subject = renderSubject(groups, ctx);
  const period = `${iso(ctx.from)} – ${iso(ctx.to)}`;
  const deferred = ctx.deferredWindows > 0 ? ` (covers ${ctx.deferredWindows + 1} windows: the hourly mail cap held earlier ones back)` : '';

  const text: string[] = [
    `${headline(groups, total, ctx.company)}.`,
    `Period: ${period}${deferred}.`,
    '',
  ];
  for (const g of groups) {
    text.push(`== ${groupLabel(g)}: ${g.count} (${howItEnded(g)})`);
    text.push(`   first failure: ${iso(g.firstFailureAt)}   last failure: ${iso(g.lastFailureAt)}`);
    if (g.samples.length) {
      text.push('   sample errors:');
      for (const s of g.samples) text.push(`     - ${s}`);
    }
    if (g.applicationIds.length) text.push(`   applications: ${g.applicationIds.join(', ')}${g.moreApplicationIds ? ` and ${g.moreApplicationIds} more` : ''}`);
    text.push('   archived in:');
    for (const loc of archiveLocations(g, ctx)) text.push(`     ${loc}`);
    if (g.companyId === UNKNOWN) text.push('   these records could not be decoded: inspect the archive objects above before any redrive');
    else text.push(`   redrive (after fixing the cause): ${redriveCommand(g)}`);
    text.push('');
  }
  if (ctx.throttled?.length) {
    text.push(`-- ${THROTTLED_HEADING}:`);
    for (const t of ctx.throttled) text.push(`   ${throttledLine(t)}`);
    text.push('');
  }
  text.push('What to do: see "Dead letters" in the ats-relay README (operations runbook).');

  const rows = groups
    .map((g) => {
      const samples = g.samples.map((s) => `<li>${escapeHtml(s)}</li>`).join('');
      const ids = g.applicationIds.length
        ? `<p>Applications: ${g.applicationIds.map((id) => `<code>${escapeHtml(id)}</code>`).join(', ')}${g.moreApplicationIds ? ` and ${g.moreApplicationIds} more` : ''}</p>`
        : '';
      const where = archiveLocations(g, ctx)
        .map((l) => `<li><code>${escapeHtml(l)}</code></li>`)
        .join('');
      const action =
        g.companyId === UNKNOWN
          ? '<p>These records could not be decoded: inspect the archive objects before any redrive.</p>'
          : `<p>Redrive (after fixing the cause):</p><pre>${escapeHtml(redriveCommand(g))}</pre>`;
      return `<tr><td>${escapeHtml(g.companyId)}</td><td>${escapeHtml(g.platform)}</td><td><code>${escapeHtml(g.errorCode)}</code></td><td style="text-align:right"><b>${g.count}</b><br><small>${escapeHtml(howItEnded(g))}</small></td><td>${iso(g.firstFailureAt)}</td><td>${iso(g.lastFailureAt)}</td></tr>
<tr><td colspan="6">${samples ? `<p>Sample errors:</p><ul>${samples}</ul>` : ''}${ids}<p>Archived in:</p><ul>${where}</ul>${action}</td></tr>`;
    })
    .join('\n');
  const html = `<!doctype html><html><body style="font-family:sans-serif">
<p>${escapeHtml(headline(groups, total, ctx.company))}.</p>
<p>Period: ${period}${escapeHtml(deferred)}.</p>
<table border="1" cellpadding="4" cellspacing="0" style="border-collapse:collapse">
<tr><th>Company</th><th>Platform</th><th>Error code</th><th>Count</th><th>First failure</th><th>Last failure</th></tr>
${rows}
</table>
${ctx.throttled?.length ? `<h3>${escapeHtml(THROTTLED_HEADING)}</h3><ul>${ctx.throttled.map((t) => `<li>${escapeHtml(throttledLine(t))}</li>`).join('')}</ul>` : ''}
<p>What to do: see "Dead letters" in the ats-relay README (operations runbook).</p>
</body></html>`;
  return { subject, text: text.join('\n'), html };
}
