/**
 * The operators' pages (admin sessions only; a company session gets 404): the pipeline (topics,
 * rates, consumer groups and lag), the topic inspector, dead letters grouped with drill-down and
 * redrive (dry run → confirm → progress → history), and the alert digests.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Digest, factOf, renderDigest } from '../../consumers/alerts/digest.ts';
import { createDigestLog } from '../../consumers/alerts/digest-log.ts';
import { listThrottled } from '../../consumers/dispatcher/throttle-log.ts';
import { UsageError } from '../../lib/cli.ts';
import { HEADER } from '../../lib/headers.ts';
import { topicSpecs } from '../../lib/topics.ts';
import { parseFilters, type RedriveFilters } from '../../scripts/redrive/filters.ts';
import type { RedriveRun } from '../../scripts/redrive/history.ts';
import { UNDECODABLE, type RecordSummary, type RedriveReport } from '../../scripts/redrive/redrive.ts';
import { html, iso, timeAgo, type Html } from './html.ts';
import type { ConsoleContext } from './index.ts';
import { csrfField, notice } from './layout.ts';
import { readPipeline, RATE_WINDOW_MS } from './pipeline.ts';
import { THROTTLED_HINT, throttledNote } from './throttling.ts';
import { deadLetterRows, decodeValue, groupDeadLetters, noFilters, readRecords, topicWatermarks, type DeadLetterRow } from './topic-reader.ts';

type FormBody = Record<string, string | string[] | undefined>;

const DAY = 86_400_000;
/** Dead letters read for one page at most (the page says when it was cut). */
const MAX_DEAD_LETTERS = 20_000;

const HEADER_MEANING: Record<string, string> = {
  [HEADER.tryCount]: 'tries so far',
  [HEADER.dueAt]: 'due at (epoch ms)',
  [HEADER.firstFailureAt]: 'first failure (epoch ms)',
  [HEADER.errorCode]: 'latest error code',
  [HEADER.errorMessage]: 'latest error message',
  [HEADER.errorStatus]: 'latest HTTP status',
  [HEADER.originalTopic]: 'original topic',
  [HEADER.originalPartition]: 'original partition',
  [HEADER.originalOffset]: 'original offset',
  [HEADER.originalTimestamp]: 'original timestamp',
  [HEADER.failedBy]: 'failed in group',
  [HEADER.redriveId]: 'redrive run',
  [HEADER.redriveCount]: 'redrives so far',
  [HEADER.redrivenAt]: 'redriven at (epoch ms)',
};

const one = (body: FormBody | undefined, key: string): string | undefined => {
  const v = body?.[key];
  return Array.isArray(v) ? v[v.length - 1] : v;
};
const many = (body: FormBody | undefined, key: string): string[] => {
  const v = body?.[key];
  return (Array.isArray(v) ? v : v === undefined ? [] : [v]).map((s) => s.trim()).filter(Boolean);
};

const num = (n: number): string => n.toLocaleString('en-US');

/** The group a redrive form names (company, platform, error code, UTC day) plus selected ids. */
interface Selection {
  company: string;
  platform: string;
  code: string;
  day: string;
  applicationIds: string[];
}

function selectionOf(body: FormBody | Record<string, string | undefined>): Selection {
  return {
    company: one(body as FormBody, 'company') ?? '',
    platform: one(body as FormBody, 'platform') ?? '',
    code: one(body as FormBody, 'code') ?? '',
    day: one(body as FormBody, 'day') ?? '',
    applicationIds: many(body as FormBody, 'applicationId'),
  };
}

/** The redrive CLI's filters for a selection, through its own parser (same checks, same words). */
async function filtersOf(s: Selection): Promise<RedriveFilters> {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(s.day)) throw new UsageError(`day: expected YYYY-MM-DD, got "${s.day}"`);
  const start = Date.parse(`${s.day}T00:00:00Z`);
  // Undecodable records cannot match payload filters: select them by error code and day only.
  const decodable = s.company !== UNDECODABLE;
  return parseFilters({
    company: decodable && s.company ? [s.company] : undefined,
    platform: decodable && s.platform ? [s.platform] : undefined,
    'error-code': s.code && s.code !== '-' ? [s.code] : undefined,
    since: new Date(start).toISOString(),
    until: new Date(start + DAY).toISOString(),
    'application-id': s.applicationIds.length ? s.applicationIds : undefined,
  });
}

function selectionFields(s: Selection): Html {
  return html`<input type="hidden" name="company" value="${s.company}"><input type="hidden" name="platform" value="${s.platform}">
    <input type="hidden" name="code" value="${s.code}"><input type="hidden" name="day" value="${s.day}">
    ${s.applicationIds.map((id) => html`<input type="hidden" name="applicationId" value="${id}">`)}`;
}

const describe = (s: Selection): string => `${s.company} · ${s.platform} · ${s.code} · ${s.day}${s.applicationIds.length ? ` · ${s.applicationIds.length} selected record(s)` : ''}`;

function recordTable(rows: RecordSummary[]): Html {
  return html`<div class="scroll"><table><thead><tr><th class="num">Partition</th><th class="num">Offset</th><th>Dead-lettered</th><th>Company</th><th>Platform</th><th>Error code</th><th>Application</th><th class="num">Redrives</th></tr></thead><tbody>
    ${rows.map((r) => html`<tr><td class="num">${r.partition}</td><td class="num">${r.offset}</td><td>${iso(r.deadAt)}</td><td>${r.companyId ?? ''}</td><td>${r.platform ?? ''}</td><td><code>${r.errorCode ?? ''}</code></td><td class="mono">${r.applicationId ?? r.key ?? ''}</td><td class="num">${r.redriveCount}</td></tr>`)}
  </tbody></table></div>`;
}

/** The dry run's report, as the CLI prints it (renderReport), as a page section. */
function reportSection(r: RedriveReport): Html {
  return html`<dl class="kv" data-report="${r.dryRun ? 'dry-run' : 'run'}">
      <dt>redrive id</dt><dd class="mono">${r.id}</dd>
      <dt>mode</dt><dd>${r.dryRun ? 'DRY RUN (nothing produced)' : `produce to ${r.targetTopic}`}</dd>
      <dt>source</dt><dd>${r.source}</dd>
      <dt>filters</dt><dd class="mono">${JSON.stringify(r.filters)}</dd>
      <dt>status</dt><dd>${r.status}</dd>
      <dt>read</dt><dd>${r.scanned}</dd>
      <dt>matched</dt><dd data-matched="${r.matched}">${r.matched}</dd>
      <dt>${r.dryRun ? 'would send' : 'sent'}</dt><dd data-would-send="${r.dryRun ? r.matched - r.refused : r.produced}">${r.dryRun ? r.matched - r.refused : r.produced}</dd>
      <dt>refused</dt><dd>${r.refused ? `${r.refused} (redriven ${r.maxRedrives} times already: loop guard)` : 0}</dd>
      <dt>not selected</dt><dd>${r.skipped}</dd>
    </dl>
    ${r.error ? notice('error', r.error) : ''}
    ${r.undecodable ? notice('error', `${r.undecodable} matched record(s) did not decode; the dispatcher will dead-letter them again unless the cause (e.g. a missing schema) is fixed.`) : ''}
    ${r.groups.length ? html`<h2>By company, platform and error code</h2><div class="scroll"><table><thead><tr><th>Company</th><th>Platform</th><th>Error code</th><th class="num">Matched</th></tr></thead><tbody>${r.groups.map((g) => html`<tr><td>${g.companyId}</td><td>${g.platform}</td><td><code>${g.errorCode}</code></td><td class="num">${g.count}</td></tr>`)}</tbody></table></div>` : ''}
    ${r.samples.length ? html`<h2>Sample (${r.samples.length} of ${r.matched - r.refused})</h2>${recordTable(r.samples)}` : ''}
    ${r.refusedRecords.length ? html`<h2>Refused (loop guard)</h2>${recordTable(r.refusedRecords)}` : ''}
    ${r.matched === 0 ? notice('info', 'No dead letter matches this selection.') : ''}`;
}

function historyTable(runs: RedriveRun[]): Html {
  if (runs.length === 0) return html`<div class="empty">No redrive runs recorded yet.</div>`;
  return html`<div class="scroll"><table><thead><tr><th>Started</th><th>By</th><th>Mode</th><th>Source</th><th>Target</th><th class="num">Matched</th><th class="num">Sent</th><th class="num">Refused</th><th>Status</th><th>Filters</th></tr></thead><tbody>
    ${runs.map((r) => html`<tr data-run="${r.id}"><td><a href="/console/redrives/${r.id}">${iso(r.startedAt)}</a></td><td>${r.operator}</td><td>${r.dryRun ? 'dry run' : 'redrive'}</td><td class="small">${r.source}</td><td class="small">${r.targetTopic}</td>
      <td class="num">${r.matched}</td><td class="num">${r.produced}</td><td class="num">${r.refused}</td>
      <td><span class="badge ${r.status === 'succeeded' ? 'ok' : r.status === 'running' ? 'warn' : 'bad'}">${r.status}</span>${r.error ? html`<div class="small">${r.error}</div>` : ''}</td>
      <td class="mono small">${Object.keys(r.filters).length ? JSON.stringify(r.filters) : '-'}</td></tr>`)}
  </tbody></table></div>`;
}

export function registerOperatorPages(app: FastifyInstance, ctx: ConsoleContext): void {
  const logger = ctx.log.child({ component: 'console' });
  const operatorOf = (request: FastifyRequest): string => `${request.consoleSession!.tokenName} (console)`;

  app.addHook('onRequest', async (request) => {
    const path = request.url.split('?')[0]!;
    if (/^\/console\/(pipeline|topics|dead-letters|redrives|alerts)(\/|$)/.test(path)) ctx.requireAdmin(request);
  });

  // --- pipeline ---

  app.get<{ Querystring: { refresh?: string } }>('/pipeline', async (request, reply) => {
    const view = await readPipeline(ctx.adminKafka(), ctx.config);
    const refresh = request.query.refresh === 'off' ? undefined : 5;
    return ctx.page(request, reply, {
      title: 'Pipeline',
      active: 'pipeline',
      refreshSeconds: refresh,
      body: () => html`<h1>Pipeline</h1>
        <p class="small muted">Read ${iso(view.readAt)} · ${refresh ? html`refreshes every ${refresh} s · <a href="?refresh=off">stop refreshing</a>` : html`<a href="?">refresh automatically</a>`}</p>
        <h2>Topics</h2>
        <div class="scroll"><table><thead><tr><th>Topic</th><th>Role</th><th class="num">Partitions</th><th class="num">End offsets (sum)</th><th class="num">Records/min (last ${RATE_WINDOW_MS / 60_000} min)</th><th>Per partition (low…high)</th></tr></thead><tbody>
        ${view.topics.map((t) => html`<tr data-topic="${t.topic}"><td class="mono">${t.topic}</td><td>${t.role}</td>
          ${t.exists
            ? html`<td class="num">${t.partitions.length}</td><td class="num">${num(t.endOffsets)}</td><td class="num">${t.perMinute.toFixed(1)}</td>
              <td><details><summary>${t.partitions.length} partitions</summary><span class="mono small">${t.partitions.map((p) => `${p.partition}: ${p.low}…${p.high}`).join(' · ')}</span></details></td>`
            : html`<td colspan="4"><span class="badge bad">missing</span> run <code>npm run topics -- ensure</code></td>`}</tr>`)}
        </tbody></table></div>
        <h2>Consumer groups</h2>
        ${view.groups.length === 0
          ? html`<div class="empty">No consumer group has committed offsets on these topics yet.</div>`
          : view.groups.map((g) => html`<section class="card" style="margin-bottom:1rem" data-group="${g.groupId}">
              <h2 class="mono" style="margin-top:0">${g.groupId}</h2>
              <p><span class="badge ${g.state === 'Stable' ? 'ok' : g.state === 'Empty' ? '' : 'warn'}">${g.state}</span> · ${g.members} member${g.members === 1 ? '' : 's'} · total lag <b data-total-lag="${g.totalLag}">${num(g.totalLag)}</b></p>
              <div class="scroll"><table><thead><tr><th>Topic</th><th class="num">Partition</th><th class="num">Committed</th><th class="num">End offset</th><th class="num">Lag</th></tr></thead><tbody>
              ${g.partitions.map((p) => html`<tr><td class="mono small">${p.topic}</td><td class="num">${p.partition}</td><td class="num">${p.committed ?? '—'}</td><td class="num">${p.high}</td><td class="num">${p.lag ?? '—'}</td></tr>`)}
              </tbody></table></div></section>`)}`,
    });
  });

  // --- topic inspector ---

  app.get<{ Querystring: { topic?: string; partition?: string; offset?: string; limit?: string } }>('/topics', async (request, reply) => {
    const specs = topicSpecs(ctx.config.topics);
    const q = request.query;
    const topic = specs.find((s) => s.topic === q.topic)?.topic;
    const partition = q.partition !== undefined && /^\d+$/.test(q.partition) ? Number(q.partition) : 0;
    const limit = Math.min(Math.max(/^\d+$/.test(q.limit ?? '') ? Number(q.limit) : 10, 1), 100);
    const offset = q.offset !== undefined && /^\d+$/.test(q.offset.trim()) ? Number(q.offset.trim()) : undefined;
    let content: Html = html`<div class="empty">Pick a topic and a partition; leave the offset empty for the newest records.</div>`;
    let partitions: number[] = [];
    if (topic) {
      const marks = await topicWatermarks(ctx.adminKafka(), topic);
      partitions = marks?.map((m) => m.partition) ?? [];
      const mark = marks?.find((m) => m.partition === partition);
      if (!marks) content = notice('error', `Topic ${topic} does not exist: run npm run topics -- ensure.`);
      else if (!mark) content = notice('error', `Topic ${topic} has no partition ${partition}.`);
      else if (mark.high <= mark.low) content = html`<div class="empty">Partition ${partition} of ${topic} holds no records (offsets ${mark.low}…${mark.high}).</div>`;
      else {
        const from = offset ?? Math.max(mark.low, mark.high - limit);
        const to = Math.min(mark.high - 1, from + limit - 1);
        const filters = { ...noFilters(), partitions: [partition], offsets: { from, to } };
        const { records } = from > to ? { records: [] } : await readRecords({ kafka: ctx.kafka(), topic, filters, logger, max: limit });
        const decoded = await Promise.all(records.map((r) => decodeValue(ctx.codec(), r.value)));
        content = records.length === 0
          ? html`<div class="empty">No records at offsets ${from}…${to} (partition ${partition} holds ${mark.low}…${mark.high - 1}).</div>`
          : html`<p class="small muted">Offsets ${from}…${to} of partition ${partition} (holds ${mark.low}…${mark.high - 1}).</p>
            ${records.map((r, i) => {
              const d = decoded[i]!;
              return html`<article class="card" style="margin-bottom:1rem" data-offset="${r.offset}">
                <h2 class="mono" style="margin-top:0">${topic} · ${r.partition} · offset ${r.offset}</h2>
                <dl class="kv"><dt>timestamp</dt><dd>${iso(Number(r.timestamp))} (${r.timestamp})</dd><dt>key</dt><dd class="mono">${r.key ? r.key.toString('utf8') : '(null)'}</dd></dl>
                <h3 class="small">Headers</h3>
                ${Object.keys(r.headers).length
                  ? html`<div class="scroll"><table data-headers><thead><tr><th>Header</th><th>Value</th><th>Meaning</th></tr></thead><tbody>${Object.entries(r.headers).map(([k, v]) => html`<tr><td class="mono">${k}</td><td class="mono">${v}${/^\d{13}$/.test(v) && /-at$|timestamp/.test(k) ? html` <span class="muted">(${iso(Number(v))})</span>` : ''}</td><td class="small muted">${HEADER_MEANING[k] ?? ''}</td></tr>`)}</tbody></table></div>`
                  : html`<p class="small muted">no headers</p>`}
                <h3 class="small">Value</h3>
                ${d.ok
                  ? html`<pre data-decoded>${JSON.stringify(d.value, null, 2)}</pre>`
                  : html`${notice('error', html`Not decodable: ${d.reason}`)}<pre data-hex>${r.value ? r.value.subarray(0, 512).toString('hex').replace(/(.{2})/g, '$1 ').trim() + (r.value.length > 512 ? ` … (${r.value.length} bytes)` : '') : '(null)'}</pre>`}
              </article>`;
            })}`;
      }
    }
    return ctx.page(request, reply, {
      title: 'Topic inspector',
      active: 'topics',
      body: () => html`<h1>Topic inspector</h1>
        <form method="get" class="filters">
          <div><label for="topic">Topic</label><select id="topic" name="topic">${specs.map((s) => html`<option value="${s.topic}"${s.topic === topic ? html` selected` : ''}>${s.topic} (${s.role})</option>`)}</select></div>
          <div><label for="partition">Partition</label>${partitions.length
            ? html`<select id="partition" name="partition">${partitions.map((p) => html`<option value="${p}"${p === partition ? html` selected` : ''}>${p}</option>`)}</select>`
            : html`<input id="partition" name="partition" type="number" min="0" value="${partition}" style="width:6rem">`}</div>
          <div><label for="offset">From offset</label><input id="offset" name="offset" type="number" min="0" value="${offset ?? ''}" placeholder="newest" style="width:9rem"></div>
          <div><label for="limit">Records</label><input id="limit" name="limit" type="number" min="1" max="100" value="${limit}" style="width:6rem"></div>
          <div><button type="submit">Read</button></div></form>
        ${content}`,
    });
  });

  // --- dead letters ---

  async function readDeadLetters(since: number): Promise<{ rows: DeadLetterRow[]; truncated: boolean }> {
    const { records, truncated } = await readRecords({ kafka: ctx.kafka(), topic: ctx.config.topics.dlq, filters: { ...noFilters(), since }, logger, max: MAX_DEAD_LETTERS });
    return { rows: await deadLetterRows(records, ctx.codec()), truncated };
  }

  app.get<{ Querystring: { days?: string } }>('/dead-letters', async (request, reply) => {
    const days = Math.min(Math.max(/^\d+$/.test(request.query.days ?? '') ? Number(request.query.days) : 7, 1), 30);
    const { rows, truncated } = await readDeadLetters(Date.now() - days * DAY);
    const groups = groupDeadLetters(rows);
    return ctx.page(request, reply, {
      title: 'Dead letters',
      active: 'dead-letters',
      body: (csrf) => html`<h1>Dead letters</h1>
        <form method="get" class="filters"><div><label for="days">Dead-lettered in the last</label><select id="days" name="days">${[1, 7, 14, 30].map((d) => html`<option value="${d}"${d === days ? html` selected` : ''}>${d} day${d === 1 ? '' : 's'}</option>`)}</select></div><div><button type="submit">Show</button></div></form>
        ${truncated ? notice('info', `Only the first ${num(MAX_DEAD_LETTERS)} dead letters are counted; narrow the period.`) : ''}
        ${groups.length === 0
          ? html`<div class="empty">No dead letters in the last ${days} day${days === 1 ? '' : 's'}. Nothing to redrive.</div>`
          : html`<p class="small muted">${num(rows.length)} dead letters in ${groups.length} groups (by company, platform, error code and UTC day of dead-lettering). Fix the cause first, then redrive: a dry run shows what would be sent.</p>
            <div class="scroll"><table><thead><tr><th>Day</th><th>Company</th><th>Platform</th><th>Error code</th><th class="num">Count</th><th>Last</th><th></th></tr></thead><tbody>
            ${groups.map((g) => {
              const s: Selection = { company: g.companyId, platform: g.platform, code: g.errorCode, day: g.day, applicationIds: [] };
              const qs = new URLSearchParams({ company: s.company, platform: s.platform, code: s.code, day: s.day }).toString();
              return html`<tr data-group="${`${g.companyId}/${g.platform}/${g.errorCode}/${g.day}`}"><td>${g.day}</td><td>${g.companyId}</td><td>${g.platform}</td><td><code>${g.errorCode}</code></td><td class="num">${g.count}</td><td>${timeAgo(new Date(g.last))}</td>
                <td><a href="/console/dead-letters/records?${qs}">Records</a>
                  <form class="inline" method="post" action="/console/dead-letters/dry-run">${csrfField(csrf)}${selectionFields(s)}<button type="submit" class="secondary">Redrive…</button></form></td></tr>`;
            })}</tbody></table></div>`}`,
    });
  });

  app.get<{ Querystring: Record<string, string | undefined> }>('/dead-letters/records', async (request, reply) => {
    const s = selectionOf(request.query);
    const filters = await filtersOf(s);
    const { rows: all, truncated } = await readDeadLetters(filters.since!);
    const rows = all.filter((r) => r.day === s.day && r.companyId === s.company && r.platform === s.platform && r.errorCode === s.code);
    return ctx.page(request, reply, {
      title: 'Dead letters · records',
      active: 'dead-letters',
      body: (csrf) => html`<p class="small"><a href="/console/dead-letters">← Dead letters</a></p><h1>${describe(s)}</h1>
        ${truncated ? notice('info', `Only the first ${num(MAX_DEAD_LETTERS)} dead letters were read.`) : ''}
        ${rows.length === 0
          ? html`<div class="empty">No dead letters in this group any more.</div>`
          : html`<form method="post" action="/console/dead-letters/dry-run">${csrfField(csrf)}
              <input type="hidden" name="company" value="${s.company}"><input type="hidden" name="platform" value="${s.platform}"><input type="hidden" name="code" value="${s.code}"><input type="hidden" name="day" value="${s.day}">
              <div class="scroll"><table><thead><tr><th><span class="small">Select</span></th><th class="num">Partition</th><th class="num">Offset</th><th>Dead-lettered</th><th>Application</th><th>Error</th><th class="num">Redrives</th></tr></thead><tbody>
              ${rows.map((r) => html`<tr><td>${r.applicationId ? html`<input type="checkbox" name="applicationId" value="${r.applicationId}" aria-label="Select ${r.applicationId}">` : ''}</td><td class="num">${r.partition}</td><td class="num"><a href="/console/topics?${new URLSearchParams({ topic: ctx.config.topics.dlq, partition: String(r.partition), offset: r.offset, limit: '1' }).toString()}">${r.offset}</a></td>
                <td>${iso(r.deadAt)}</td><td class="mono">${r.applicationId ?? r.key ?? ''}</td><td><code>${r.errorCode}</code> <span class="small">${r.errorMessage}</span></td><td class="num">${r.redriveCount}</td></tr>`)}
              </tbody></table></div>
              <p class="hint">Select records to redrive only those, or none for the whole group.</p>
              <div class="actions"><button type="submit">Redrive… (dry run first)</button></div></form>`}`,
    });
  });

  /** The selection's redrive filters, or the reason they cannot be built (shown as the page's error). */
  async function filtersOrRefusal(s: Parameters<typeof filtersOf>[0]): Promise<RedriveFilters | string> {
    try {
      return await filtersOf(s);
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      return err.message;
    }
  }

  app.post<{ Body: FormBody }>('/dead-letters/dry-run', async (request, reply) => {
    const s = selectionOf(request.body ?? {});
    const filters = await filtersOrRefusal(s);
    if (typeof filters === 'string') return ctx.page(request, reply, { title: 'Redrive', active: 'dead-letters', status: 400, body: () => notice('error', filters) });
    const report = await ctx.redrives.dryRun(filters, operatorOf(request));
    const sendable = report.matched - report.refused;
    return ctx.page(request, reply, {
      title: 'Redrive · dry run',
      active: 'dead-letters',
      body: (csrf) => html`<p class="small"><a href="/console/dead-letters">← Dead letters</a></p><h1>Redrive: dry run</h1>
        <p>${describe(s)}. Nothing was sent. Fix the cause first (credentials, job mapping, ATS back up); otherwise the records fail the same way again.</p>
        ${reportSection(report)}
        ${sendable > 0
          ? html`<form method="post" action="/console/dead-letters/redrive" class="actions">${csrfField(csrf)}${selectionFields(s)}
              <button type="submit" class="danger">Confirm: send ${sendable} record${sendable === 1 ? '' : 's'} to ${ctx.config.topics.applications}</button><a href="/console/dead-letters">Cancel</a></form>`
          : ''}`,
    });
  });

  app.post<{ Body: FormBody }>('/dead-letters/redrive', async (request, reply) => {
    const s = selectionOf(request.body ?? {});
    const filters = await filtersOrRefusal(s);
    if (typeof filters === 'string') return ctx.page(request, reply, { title: 'Redrive', active: 'dead-letters', status: 400, body: () => notice('error', filters) });
    const id = await ctx.redrives.start(filters, operatorOf(request));
    request.log.info({ redriveId: id, selection: describe(s) }, 'console redrive started');
    return reply.redirect(`/console/redrives/${id}`, 303);
  });

  // --- redrive runs ---

  app.get<{ Params: { id: string } }>('/redrives/:id', async (request, reply) => {
    const id = request.params.id;
    const live = ctx.redrives.progress(id);
    const run = /^[0-9a-f-]{36}$/i.test(id) ? await ctx.redrives.runs.get(id) : null;
    if (!live && !run) return reply.callNotFound();
    const running = (run?.status ?? 'running') === 'running' && !live?.report && !live?.error;
    const counts = live?.counts ?? run!;
    const total = Math.max(live?.total ?? run?.scanned ?? 0, counts.scanned);
    return ctx.page(request, reply, {
      title: 'Redrive run',
      active: 'redrives',
      refreshSeconds: running ? 1 : undefined,
      body: () => html`<p class="small"><a href="/console/redrives">← Redrive history</a></p><h1>Redrive run</h1>
        <p class="mono small">${id}${run ? html` · started ${iso(run.startedAt)} by ${run.operator}` : ''}</p>
        <p data-run-status="${running ? 'running' : (live?.report?.status ?? run?.status ?? 'failed')}"><b>${running ? 'Running…' : (live?.report?.status ?? run?.status ?? 'failed')}</b></p>
        <progress max="${Math.max(total, 1)}" value="${running ? counts.scanned : Math.max(total, 1)}" aria-label="Records read">${counts.scanned} / ${total}</progress>
        <dl class="kv"><dt>read</dt><dd>${counts.scanned} of ${total}</dd><dt>matched</dt><dd>${counts.matched}</dd><dt>sent</dt><dd data-sent="${counts.produced}">${counts.produced}</dd><dt>refused</dt><dd>${counts.refused}</dd></dl>
        ${live?.error ? notice('error', live.error) : ''}
        ${live?.report ? reportSection(live.report) : run?.error ? notice('error', run.error) : ''}
        ${running ? '' : html`<p>The dispatcher delivers what was sent; watch the integration's Deliveries tab. Re-running the same redrive is safe.</p>`}`,
    });
  });

  app.get('/redrives', async (request, reply) => {
    const runs = await ctx.redrives.runs.list(50);
    return ctx.page(request, reply, {
      title: 'Redrive history',
      active: 'redrives',
      body: () => html`<h1>Redrive history</h1><p class="small muted">Every run from the console and from <code>npm run redrive</code>, dry runs included, newest first.</p>${historyTable(runs)}`,
    });
  });

  // --- alerts ---

  app.get('/alerts', async (request, reply) => {
    const windowMs = ctx.config.alerts.windowMs;
    const now = Date.now();
    const since = now - DAY;
    const { records, truncated } = await readRecords({ kafka: ctx.kafka(), topic: ctx.config.topics.dlq, filters: { ...noFilters(), since }, logger, max: MAX_DEAD_LETTERS });
    // The alert consumer's own digest code, per window (aligned like the consumer's windows).
    const digests = new Map<number, Digest>();
    for (const r of records) {
      const d = await decodeValue(ctx.codec(), r.value);
      const fact = factOf(r, d.ok ? d.value : undefined);
      const start = Math.floor(fact.deadAt / windowMs) * windowMs;
      let digest = digests.get(start);
      if (!digest) digests.set(start, (digest = new Digest({ maxSamples: 3, maxApplicationIds: 20 })));
      digest.add(fact, fact.deadAt);
    }
    const rendered = [...digests.entries()]
      .sort((a, b) => b[0] - a[0])
      .map(([start, digest]) => ({ start, ...renderDigest(digest.groups(), { from: start, to: Math.min(start + windowMs, now), windowMs, bucket: ctx.config.s3.bucket, prefix: ctx.config.s3.prefix, deferredWindows: 0 }) }));
    const throttled = await listThrottled(ctx.pool);
    const sent = await createDigestLog(ctx.pool).recent(20);
    return ctx.page(request, reply, {
      title: 'Alerts',
      active: 'alerts',
      body: () => html`<h1>Alert digests</h1>
        <h2>Throttled integrations</h2>
        <p class="small muted">${THROTTLED_HINT} One alert per episode once it lasts ${Math.round(ctx.config.alerts.throttledAfterMs / 60_000)} min (ALERT_THROTTLED_AFTER_MS).</p>
        ${throttled.length === 0
          ? html`<div class="empty">No integration is throttled right now.</div>`
          : html`<div class="cards" style="margin-bottom:1rem">${throttled.map((t) => html`<div class="card" data-throttled-card="${t.integrationId}"><h3 style="margin:0 0 .3rem"><a href="/console/integrations/${t.integrationId}">${t.integrationName ?? t.integrationId}</a></h3><p class="small muted">company ${t.companyId} · ${t.platform}</p>${throttledNote(t)}</div>`)}</div>`}
        <h2>Digests e-mailed</h2>
        <p class="small muted">What the alert consumer recorded before sending (newest first, last 20): the DLQ offsets each digest counted — a dead letter is in one digest only — and whether SMTP took every mail.</p>
        ${sent.length === 0
          ? html`<div class="empty">No digest recorded yet.</div>`
          : html`<div class="scroll"><table data-sent-digests><tr><th>Recorded</th><th>Status</th><th class="num">Dead letters</th><th class="num">Mails</th><th>DLQ offsets</th><th>Digest id (in the Message-ID)</th></tr>
            ${sent.map((d) => html`<tr data-digest="${d.id}"><td>${timeAgo(d.claimedAt)}</td><td>${d.sentAt ? html`<span class="badge ok">sent</span> ${timeAgo(d.sentAt)}` : html`<span class="badge warn">sending</span>`}</td><td class="num">${num(d.records)}</td><td class="num">${d.mails}</td><td class="small">${d.ranges.map((r) => `p${r.partition} ${r.firstOffset}–${r.lastOffset}`).join(', ')}</td><td class="mono small">${d.id}</td></tr>`)}</table></div>`}
        <h2>Digests of the last 24 h, rebuilt from the DLQ</h2>
        <p class="small muted">The digests of the last 24 h, newest first, built from the DLQ with the alert consumer's own code, one per ${Math.round(windowMs / 60_000)}-minute window (ALERT_WINDOW_MS). The hourly mail cap may have folded several windows into one e-mail.</p>
        ${truncated ? notice('info', `Only the first ${num(MAX_DEAD_LETTERS)} dead letters were read.`) : ''}
        ${rendered.length === 0
          ? html`<div class="empty">No dead letters in the last 24 hours, so no digest.</div>`
          : rendered.map((d) => html`<article class="card" style="margin-bottom:1rem"><h2>${d.subject}</h2><p class="small muted">window ${iso(d.start)} – ${iso(d.start + windowMs)}</p><details><summary>Digest text</summary><pre>${d.text}</pre></details></article>`)}`,
    });
  });
}
