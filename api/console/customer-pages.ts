/**
 * The pages a customer's admin uses (and operators too, across companies): integration cards, an
 * integration's tabs (overview with the hourly chart, settings, deliveries, job mappings), the new
 * integration form, enable/disable and connection tests. Reads and writes go through the
 * integration repository with the session's scope, validation through registry/.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RelayError, truncate } from '../../lib/errors.ts';
import { PLATFORMS, type Integration, type Platform } from '../../registry/integration.ts';
import { deliveriesPerHour, deliveryCounts, type StatusCounts } from '../../consumers/dispatcher/delivery-stats.ts';
import { notFound, RegistryError, ValidationError } from '../../registry/errors.ts';
import { validate, type FieldError } from '../../registry/json-schema.ts';
import { maskCredentials } from '../../registry/masking.ts';
import { applyIntegrationPatch } from '../../registry/patch.ts';
import { DELIVERY_STATUSES, type DeliveryRecord, type DeliveryStatus } from '../../consumers/dispatcher/delivery-store.ts';
import type { IntegrationRecord } from '../../registry/integrations.ts';
import { companyIdSchema, jobIdSchema, validateNewIntegration } from '../../registry/validation.ts';
import { listThrottled, type ThrottledIntegration } from '../../consumers/dispatcher/throttle-log.ts';
import { deliveriesChart } from './chart.ts';
import { integrationFields, parseIntegrationForm, PLATFORM_LABELS, platformLogo } from './forms.ts';
import { html, timeAgo, trusted, type Html } from './html.ts';
import type { ConsoleContext } from './index.ts';
import { csrfField, notice } from './layout.ts';
import { THROTTLED_HINT, throttledNote } from './throttling.ts';
import { createWebhookSecrets, webhookSigning, webhookUrl, webhookVerifiable } from '../../producers/webhooks/secrets.ts';

type FormBody = Record<string, string | string[] | undefined>;
type IdParams = { Params: { id: string } };

const DAY = 86_400_000;

export interface ConnectionResult {
  ok: boolean;
  durationMs: number;
  error?: { code: string; status: number | null; message: string };
}

/** The connector's answer, as POST /integrations/:id/test gives it. */
async function testConnection(ctx: ConsoleContext, integration: Integration): Promise<ConnectionResult> {
  if (!ctx.connectors) return { ok: false, durationMs: 0, error: { code: 'not_implemented', status: null, message: 'this process has no ATS connectors' } };
  const started = Date.now();
  try {
    await ctx.connectors.testConnection(integration, AbortSignal.timeout(ctx.config.ats.requestTimeoutMs * 2));
    return { ok: true, durationMs: Date.now() - started };
  } catch (err) {
    const e = err as Partial<RelayError> & Error;
    return { ok: false, durationMs: Date.now() - started, error: { code: e.code ?? 'unknown', status: e.status ?? null, message: truncate(e.message ?? String(err), 500) } };
  }
}

function connectionNotice(r: ConnectionResult): Html {
  return r.ok
    ? notice('ok', html`<span data-test-result="ok">Connection OK</span> — the ATS answered in ${r.durationMs} ms.`)
    : notice('error', html`<span data-test-result="failed">Connection failed</span>: <code>${r.error!.code}</code>${r.error!.status ? ` (HTTP ${r.error!.status})` : ''} — ${r.error!.message}`);
}

function successRate(c: StatusCounts): string {
  const done = c.delivered + c.dead_lettered + c.retrying;
  return done === 0 ? '–' : `${Math.round((c.delivered / done) * 1000) / 10} %`;
}

function figures(c: StatusCounts): Html {
  return html`<div class="figures" aria-label="Deliveries in the last 24 hours">
    <div><b>${c.delivered}</b><span class="small muted">delivered</span></div>
    <div><b>${c.retrying}</b><span class="small muted">retrying</span></div>
    <div><b>${c.dead_lettered}</b><span class="small muted">dead-lettered</span></div>
    <div><b>${successRate(c)}</b><span class="small muted">success (24 h)</span></div>
  </div>`;
}

const enabledBadge = (i: IntegrationRecord): Html => (i.enabled ? html`<span class="badge ok">enabled</span>` : html`<span class="badge warn">disabled</span>`);

function lastError(i: IntegrationRecord): Html {
  return i.lastError ? html`<p class="small"><span class="badge bad">last error</span> ${timeAgo(i.lastErrorAt)}: ${truncate(i.lastError, 200)}</p>` : html`<p class="small muted">no errors recorded</p>`;
}

function enableForm(i: IntegrationRecord, csrf: string, back: string): Html {
  return html`<form class="inline" method="post" action="/console/integrations/${i.id}/enabled">${csrfField(csrf)}
    <input type="hidden" name="version" value="${i.version}"><input type="hidden" name="enabled" value="${i.enabled ? 'false' : 'true'}"><input type="hidden" name="back" value="${back}">
    <button type="submit" class="secondary">${i.enabled ? 'Disable' : 'Enable'}</button></form>`;
}

function testForm(i: IntegrationRecord, csrf: string): Html {
  return html`<form class="inline" method="post" action="/console/integrations/${i.id}/test">${csrfField(csrf)}<button type="submit" class="secondary">Test connection</button></form>`;
}

const TABS = [
  { key: 'overview', label: 'Overview', path: '' },
  { key: 'settings', label: 'Settings', path: '/settings' },
  { key: 'deliveries', label: 'Deliveries', path: '/deliveries' },
  { key: 'jobs', label: 'Job mappings', path: '/jobs' },
] as const;
type Tab = (typeof TABS)[number]['key'];

function detailShell(i: IntegrationRecord, tab: Tab, content: Html): Html {
  return html`<p class="small"><a href="/console/integrations">← Integrations</a></p>
    <h1>${platformLogo(i.platform)}${i.name} ${enabledBadge(i)}</h1>
    <p class="muted small">${PLATFORM_LABELS[i.platform]} · company ${i.companyId} · id <span class="mono">${i.id}</span> · version ${i.version}</p>
    <nav class="tabs" aria-label="Integration">${TABS.map((t) => html`<a href="/console/integrations/${i.id}${t.path}"${t.key === tab ? trusted(' aria-current="page"') : ''}>${t.label}</a>`)}</nav>
    ${content}`;
}

/** The stored values as form inputs show them (secrets excluded). */
function storedValues(i: IntegrationRecord): Record<string, string> {
  const v: Record<string, string> = { name: i.name, apiBaseUrl: i.apiBaseUrl ?? '' };
  for (const [k, val] of Object.entries(i.settings as unknown as Record<string, unknown>)) v[`settings.${k}`] = typeof val === 'object' ? JSON.stringify(val) : String(val);
  return v;
}

const one = (body: FormBody | undefined, key: string): string | undefined => {
  const v = body?.[key];
  return Array.isArray(v) ? v[v.length - 1] : v;
};

/** Platforms whose webhook secret we generate (Lever's tokens come from Lever; Workable signs with its API token). */
const GENERATED_SECRET: ReadonlySet<Platform> = new Set(['greenhouse', 'ashby', 'generic']);

export function registerCustomerPages(app: FastifyInstance, ctx: ConsoleContext): void {
  const { repository: repo } = ctx;
  const secrets = createWebhookSecrets({ pool: ctx.pool, keyring: ctx.keyring });

  /** The way back: where the ATS sends status webhooks, what signs them, and (once) a secret just generated. */
  async function webhookCard(i: IntegrationRecord, newSecret?: string): Promise<(csrf: string) => Html> {
    const info = await secrets.info(i.id);
    const set = webhookVerifiable(i.platform, info);
    const status =
      i.platform === 'workable'
        ? ''
        : set
          ? html` Secret set${info.shared ? html` ${timeAgo(info.shared.rotatedAt)}` : ''}.`
          : html` <strong>No secret set yet</strong>: webhooks are refused until one is.`;
    return (csrf) => html`<section class="card" data-webhook style="margin-top:1rem"><h2>Status webhooks</h2>
      <p class="small">Register this URL in ${PLATFORM_LABELS[i.platform]} for stage changes, hires and rejections:</p>
      <p class="mono" data-webhook-url>${webhookUrl(ctx.config.inbound.publicBaseUrl, i.id)}</p>
      <p class="small">Signed with ${webhookSigning(i.platform)}.${status}</p>
      ${i.platform === 'lever'
        ? html`<p class="small">Lever issues a token per webhook (per event). ${info.events.length ? html`Tokens stored for: ${info.events.map((e, n) => html`${n ? ', ' : ''}<span class="mono">${e.event}</span>`)}.` : 'No event has a token of its own yet.'}
            Store each with <span class="mono">npm run integrations -- webhook ${i.id} --rotate --event &lt;event&gt; --secret-file -</span>.</p>`
        : ''}
      ${newSecret ? notice('ok', html`New webhook secret — give it to the ATS now, it is not shown again: <span class="mono" data-new-secret>${newSecret}</span>`) : ''}
      ${GENERATED_SECRET.has(i.platform)
        ? html`<form method="post" action="/console/integrations/${i.id}/webhook-secret" class="actions">${csrfField(csrf)}<button type="submit">${set ? 'Replace the secret' : 'Generate a secret'}</button></form>
            ${set ? html`<p class="hint">Replacing it refuses webhooks signed with the old one until the ATS has the new one.</p>` : ''}`
        : ''}
    </section>`;
  }

  async function load(request: FastifyRequest, id: string): Promise<IntegrationRecord> {
    const found = await repo.getIntegration(id, ctx.scopeOf(request));
    if (!found) throw notFound('integration', id);
    return found;
  }

  // --- the cards ---

  app.get('/integrations', async (request, reply) => {
    const items = await repo.listIntegrations(ctx.scopeOf(request));
    const counts = await deliveryCounts(ctx.pool, items.map((i) => i.id), new Date(Date.now() - DAY));
    const throttled = new Map((await listThrottled(ctx.pool, { integrationIds: items.map((i) => i.id) })).map((t) => [t.integrationId, t]));
    const admin = request.consoleSession?.scope.kind === 'admin';
    return ctx.page(request, reply, {
      title: 'Integrations',
      active: 'integrations',
      body: (csrf) => html`<h1>Integrations</h1>
        <div class="actions" style="margin:0 0 1rem"><a class="button" href="/console/integrations/new">Add an integration</a></div>
        ${items.length === 0
          ? html`<div class="empty"><p>No integrations yet — <a href="/console/integrations/new">add one</a> to connect your ATS.</p></div>`
          : html`<div class="cards">${items.map(
              (i) => html`<article class="card" data-integration="${i.id}">
                <h2>${platformLogo(i.platform)}<a href="/console/integrations/${i.id}">${i.name}</a></h2>
                <p class="small muted">${PLATFORM_LABELS[i.platform]}${admin ? ` · company ${i.companyId}` : ''} · ${enabledBadge(i)}</p>
                ${figures(counts.get(i.id)!)}
                ${throttled.has(i.id) ? throttledNote(throttled.get(i.id)!) : ''}
                <p class="small">Last delivery: ${timeAgo(i.lastDeliveryAt)}</p>
                ${lastError(i)}
                <div class="actions">${enableForm(i, csrf, '/console/integrations')}${testForm(i, csrf)}</div>
              </article>`,
            )}</div>`}`,
    });
  });

  // --- overview tab ---

  async function overview(request: FastifyRequest, reply: FastifyReply, i: IntegrationRecord, top?: Html, newSecret?: string): Promise<FastifyReply> {
    const now = new Date();
    const counts = (await deliveryCounts(ctx.pool, [i.id], new Date(now.getTime() - DAY))).get(i.id)!;
    const buckets = await deliveriesPerHour(ctx.pool, i.id, new Date(now.getTime() - 7 * DAY), now);
    const [throttled]: Array<ThrottledIntegration | undefined> = await listThrottled(ctx.pool, { integrationIds: [i.id] });
    const webhook = await webhookCard(i, newSecret);
    return ctx.page(request, reply, {
      title: i.name,
      active: 'integrations',
      body: (csrf) =>
        detailShell(
          i,
          'overview',
          html`${top ?? ''}
          ${throttled ? html`<section class="card" data-throttling style="margin-bottom:1rem"><h2>Throttled by the ATS</h2>${throttledNote(throttled)}<p class="hint">${THROTTLED_HINT}</p></section>` : ''}
          <section class="card"><h2>Last 24 hours</h2>${figures(counts)}
            <p class="small">Last delivery: ${timeAgo(i.lastDeliveryAt)}</p>${lastError(i)}
            <div class="actions">${enableForm(i, csrf, `/console/integrations/${i.id}`)}${testForm(i, csrf)}</div></section>
          <h2>Deliveries per hour, last 7 days</h2>
          <figure class="chart" style="margin:0">${trusted(deliveriesChart(buckets, `Deliveries per hour of ${i.name} over the last 7 days`))}</figure>
          ${webhook(csrf)}`,
        ),
    });
  }

  app.get<IdParams>('/integrations/:id', async (request, reply) => overview(request, reply, await load(request, request.params.id)));

  app.post<IdParams>('/integrations/:id/test', async (request, reply) => {
    const i = await load(request, request.params.id);
    const result = await testConnection(ctx, i);
    request.log.info({ integrationId: i.id, ok: result.ok, code: result.error?.code }, 'console connection test');
    return overview(request, reply, i, connectionNotice(result));
  });

  app.post<IdParams>('/integrations/:id/webhook-secret', async (request, reply) => {
    const i = await load(request, request.params.id);
    if (!GENERATED_SECRET.has(i.platform)) throw new ValidationError([{ field: 'platform', message: `${PLATFORM_LABELS[i.platform]} webhooks are not signed with a secret generated here` }]);
    const secret = await secrets.rotate(i.id);
    request.log.info({ integrationId: i.id }, 'webhook secret generated from the console');
    return overview(request, reply, i, undefined, secret);
  });

  app.post<IdParams & { Body: FormBody }>('/integrations/:id/enabled', async (request, reply) => {
    const i = await load(request, request.params.id);
    const version = Number(one(request.body, 'version'));
    await applyIntegrationPatch(repo, i, { version, enabled: one(request.body, 'enabled') === 'true' }, ctx.scopeOf(request));
    const back = one(request.body, 'back');
    return reply.redirect(back === '/console/integrations' ? back : `/console/integrations/${i.id}`, 303);
  });

  // --- settings tab ---

  function settingsPage(request: FastifyRequest, reply: FastifyReply, i: IntegrationRecord, o: { values?: Record<string, string>; errors?: FieldError[]; top?: Html; status?: number; enabled?: boolean; allowMissingResume?: boolean }): FastifyReply {
    return ctx.page(request, reply, {
      title: `${i.name} · settings`,
      active: 'integrations',
      status: o.status,
      body: (csrf) =>
        detailShell(
          i,
          'settings',
          html`${o.top ?? ''}<form method="post" action="/console/integrations/${i.id}/settings" novalidate>${csrfField(csrf)}
            <input type="hidden" name="version" value="${i.version}">
            ${integrationFields({ platform: i.platform, values: o.values ?? storedValues(i), errors: o.errors ?? [], masked: maskCredentials(i.credentials), enabled: o.enabled ?? i.enabled, allowMissingResume: o.allowMissingResume ?? i.allowMissingResume })}
            <div class="actions"><button type="submit">Save changes</button><a href="/console/integrations/${i.id}">Cancel</a></div></form>`,
        ),
    });
  }

  app.get<IdParams & { Querystring: { saved?: string } }>('/integrations/:id/settings', async (request, reply) => {
    const i = await load(request, request.params.id);
    return settingsPage(request, reply, i, { top: request.query.saved ? notice('ok', `Saved (version ${i.version}).`) : undefined });
  });

  app.post<IdParams & { Body: FormBody }>('/integrations/:id/settings', async (request, reply) => {
    const i = await load(request, request.params.id);
    const form = parseIntegrationForm(i.platform, request.body ?? {});
    const settings: Record<string, unknown> = { ...form.settings };
    for (const k of form.emptySettings) if (k in (i.settings as object)) settings[k] = null; // emptied: remove the key
    const patch: Record<string, unknown> = {
      version: Number(one(request.body, 'version')),
      name: form.name,
      apiBaseUrl: form.apiBaseUrl,
      settings,
      enabled: form.enabled,
      allowMissingResume: form.allowMissingResume,
    };
    // A typed secret replaces that secret; the others stay as stored.
    if (Object.keys(form.credentials).length) patch.credentials = { ...i.credentials, ...form.credentials };
    try {
      await applyIntegrationPatch(repo, i, patch, ctx.scopeOf(request));
    } catch (err) {
      if (err instanceof ValidationError) {
        return settingsPage(request, reply, i, { values: form.echo, errors: err.fields, status: 400, enabled: form.enabled, allowMissingResume: form.allowMissingResume, top: notice('error', 'Not saved: fix the fields marked below. Secrets you typed were not kept; type them again.') });
      }
      if (err instanceof RegistryError && err.code === 'version_conflict') {
        const fresh = await load(request, i.id);
        return settingsPage(request, reply, fresh, { status: 409, top: notice('error', `Not saved: someone else changed this integration meanwhile (now version ${fresh.version}). The form shows their values; make your change again.`) });
      }
      throw err;
    }
    return reply.redirect(`/console/integrations/${i.id}/settings?saved=1`, 303);
  });

  // --- deliveries tab ---

  app.get<IdParams & { Querystring: { status?: string; q?: string; cursor?: string } }>('/integrations/:id/deliveries', async (request, reply) => {
    const i = await load(request, request.params.id);
    const status = (DELIVERY_STATUSES as readonly string[]).includes(request.query.status ?? '') ? (request.query.status as DeliveryStatus) : undefined;
    const q = (request.query.q ?? '').trim();
    let rows: DeliveryRecord[];
    let nextCursor: string | null = null;
    // An e-mail address is looked up by its hash in the delivery log; anything else is an application id.
    const byEmail = q.includes('@');
    if (q && !byEmail) {
      const found = await ctx.deliveries.findDelivery(i.id, q);
      rows = found && (!status || found.status === status) ? [found] : [];
    } else {
      const page = await ctx.deliveries.listDeliveries(i.id, { status, ...(byEmail ? { candidateEmail: q } : {}), limit: 25, cursor: request.query.cursor || undefined });
      rows = page.items;
      nextCursor = page.nextCursor;
    }
    const statusBadge = (s: DeliveryStatus): Html => html`<span class="badge ${s === 'delivered' ? 'ok' : s === 'dead_lettered' ? 'bad' : 'warn'}">${s.replace('_', '-')}</span>`;
    const qs = (extra: Record<string, string>): string => new URLSearchParams({ ...(status ? { status } : {}), ...extra }).toString();
    return ctx.page(request, reply, {
      title: `${i.name} · deliveries`,
      active: 'integrations',
      body: () =>
        detailShell(
          i,
          'deliveries',
          html`<form method="get" class="filters" role="search">
            <div><label for="status">Status</label><select id="status" name="status"><option value="">all</option>${DELIVERY_STATUSES.map((s) => html`<option value="${s}"${s === status ? html` selected` : ''}>${s.replace('_', '-')}</option>`)}</select></div>
            <div><label for="q">Application id or candidate e-mail</label><input id="q" name="q" type="search" value="${q}" placeholder="exact application id or e-mail"></div>
            <div><button type="submit">Filter</button></div></form>
          ${rows.length === 0
            ? html`<div class="empty">${q ? `No delivery ${byEmail ? 'for candidate' : 'of application'} ${q}${status ? ` with status ${status}` : ''}.` : status ? `No ${status.replace('_', '-')} deliveries.` : 'No deliveries yet: they appear here as soon as applications for this integration are processed.'}</div>`
            : html`<div class="scroll"><table><caption class="small muted" style="text-align:left;padding:.3rem .5rem">Newest first</caption>
              <thead><tr><th>Application</th><th>Status</th><th class="num">Tries</th><th>Error</th><th>ATS candidate</th><th>ATS application</th><th>Last attempt</th></tr></thead>
              <tbody>${rows.map(
                (d) => html`<tr data-application="${d.applicationId}"><td class="mono">${d.applicationId}</td><td>${statusBadge(d.status)}</td><td class="num">${d.tryCount}</td>
                  <td>${d.errorCode ? html`<code>${d.errorCode}</code>${d.errorStatus ? ` (${d.errorStatus})` : ''}<div class="small">${truncate(d.errorMessage ?? '', 300)}</div>` : ''}</td>
                  <td class="mono">${d.externalCandidateId ?? ''}</td><td class="mono">${d.externalApplicationId ?? ''}</td><td>${timeAgo(d.lastAttemptAt ?? d.createdAt)}</td></tr>`,
              )}</tbody></table></div>
              ${nextCursor ? html`<p><a href="/console/integrations/${i.id}/deliveries?${qs({ ...(byEmail ? { q } : {}), cursor: nextCursor })}">Older deliveries →</a></p>` : ''}`}
          <p class="hint">The delivery log keeps a hash of each candidate's e-mail, not the address: search by the exact address (case does not matter).</p>`,
        ),
    });
  });

  // --- job mappings tab ---

  async function jobsPage(request: FastifyRequest, reply: FastifyReply, i: IntegrationRecord, o: { errors?: FieldError[]; values?: Record<string, string>; status?: number } = {}): Promise<FastifyReply> {
    const mappings = await repo.listJobMappings(i.id, ctx.scopeOf(request));
    const err = (f: string): Html => {
      const e = o.errors?.filter((x) => x.field === f) ?? [];
      return e.length ? html`<p class="field-error" id="f-${f}-error" role="alert">${e.map((x) => x.message).join('; ')}</p>` : html``;
    };
    return ctx.page(request, reply, {
      title: `${i.name} · job mappings`,
      active: 'integrations',
      status: o.status,
      body: (csrf) =>
        detailShell(
          i,
          'jobs',
          html`<p class="hint">Which ATS job each of our job ids goes to (when the event does not name the ATS job itself).</p>
          ${mappings.length === 0
            ? html`<div class="empty">No job mappings yet.</div>`
            : html`<div class="scroll"><table><thead><tr><th>Our job id</th><th>ATS job id</th><th>Updated</th><th></th></tr></thead><tbody>${mappings.map(
                (m) => html`<tr><td class="mono">${m.jobId}</td><td class="mono">${m.externalJobId}</td><td>${timeAgo(m.updatedAt)}</td>
                  <td><form class="inline" method="post" action="/console/integrations/${i.id}/jobs/delete">${csrfField(csrf)}<input type="hidden" name="jobId" value="${m.jobId}"><button type="submit" class="secondary" aria-label="Remove mapping ${m.jobId}">Remove</button></form></td></tr>`,
              )}</tbody></table></div>`}
          <form method="post" action="/console/integrations/${i.id}/jobs" class="card" novalidate>${csrfField(csrf)}<h2>Add or change a mapping</h2>
            <label for="f-jobId">Our job id <span class="req">*</span></label><input id="f-jobId" name="jobId" type="text" value="${o.values?.jobId ?? ''}"${o.errors?.some((e) => e.field === 'jobId') ? html` aria-invalid="true"` : ''}>${err('jobId')}
            <label for="f-externalJobId">ATS job id <span class="req">*</span></label><input id="f-externalJobId" name="externalJobId" type="text" value="${o.values?.externalJobId ?? ''}"${o.errors?.some((e) => e.field === 'externalJobId') ? html` aria-invalid="true"` : ''}>${err('externalJobId')}
            <div class="actions"><button type="submit">Save mapping</button></div></form>`,
        ),
    });
  }

  app.get<IdParams>('/integrations/:id/jobs', async (request, reply) => jobsPage(request, reply, await load(request, request.params.id)));

  app.post<IdParams & { Body: FormBody }>('/integrations/:id/jobs', async (request, reply) => {
    const i = await load(request, request.params.id);
    const jobId = (one(request.body, 'jobId') ?? '').trim();
    const externalJobId = (one(request.body, 'externalJobId') ?? '').trim();
    // The same schemas as PUT /integrations/:id/jobs/:jobId.
    const errors = [
      ...validate(jobIdSchema, jobId, 'jobId').errors,
      ...validate({ type: 'string', minLength: 1, maxLength: 200 }, externalJobId, 'externalJobId').errors,
    ];
    if (errors.length) return jobsPage(request, reply, i, { errors, values: { jobId, externalJobId }, status: 400 });
    await repo.putJobMapping(i.id, jobId, externalJobId, ctx.scopeOf(request));
    return reply.redirect(`/console/integrations/${i.id}/jobs`, 303);
  });

  app.post<IdParams & { Body: FormBody }>('/integrations/:id/jobs/delete', async (request, reply) => {
    const i = await load(request, request.params.id);
    await repo.deleteJobMapping(i.id, one(request.body, 'jobId') ?? '', ctx.scopeOf(request));
    return reply.redirect(`/console/integrations/${i.id}/jobs`, 303);
  });

  // --- new integration ---

  const isPlatform = (p: unknown): p is Platform => typeof p === 'string' && (PLATFORMS as readonly string[]).includes(p);

  function newPage(request: FastifyRequest, reply: FastifyReply, platform: Platform | undefined, o: { values?: Record<string, string>; errors?: FieldError[]; top?: Html; status?: number; enabled?: boolean; allowMissingResume?: boolean } = {}): FastifyReply {
    const admin = request.consoleSession?.scope.kind === 'admin';
    const companyErrors = o.errors?.filter((e) => e.field === 'companyId') ?? [];
    return ctx.page(request, reply, {
      title: 'New integration',
      active: 'integrations',
      status: o.status,
      body: (csrf) => html`<p class="small"><a href="/console/integrations">← Integrations</a></p><h1>New integration</h1>
        <form method="get" action="/console/integrations/new" class="filters"><div><label for="platform">Platform</label>
          <select id="platform" name="platform">${PLATFORMS.map((p) => html`<option value="${p}"${p === platform ? html` selected` : ''}>${PLATFORM_LABELS[p]}</option>`)}</select></div>
          <div><button type="submit" class="secondary">${platform ? 'Switch platform' : 'Continue'}</button></div></form>
        ${platform
          ? html`${o.top ?? ''}<form method="post" action="/console/integrations/new" novalidate id="new-integration">${csrfField(csrf)}
              <input type="hidden" name="platform" value="${platform}">
              ${admin
                ? html`<fieldset class="card"><legend>Company</legend><label for="f-companyId">Company id <span class="req">*</span></label>
                    <input id="f-companyId" name="companyId" type="text" value="${o.values?.companyId ?? ''}"${companyErrors.length ? html` aria-invalid="true" aria-describedby="f-companyId-error"` : ''}>
                    ${companyErrors.length ? html`<p class="field-error" id="f-companyId-error" role="alert">${companyErrors.map((e) => e.message).join('; ')}</p>` : ''}</fieldset>`
                : ''}
              ${integrationFields({ platform, values: o.values ?? {}, errors: (o.errors ?? []).filter((e) => e.field !== 'companyId'), enabled: o.enabled ?? true, allowMissingResume: o.allowMissingResume ?? false })}
              <div class="actions"><button type="submit" formaction="/console/integrations/new/test" class="secondary" data-test-connection>Test connection</button>
                <button type="submit">Save integration</button></div>
              <output id="test-result" aria-live="polite"></output>
            </form>
            <script>${trusted(TEST_SCRIPT)}</script>`
          : html`<p>Pick the ATS to connect; the form shows what that platform needs.</p>`}`,
    });
  }

  /** Progressive enhancement: test without a reload, so typed secrets stay in the form. */
  const TEST_SCRIPT = `document.querySelector('[data-test-connection]').addEventListener('click',async function(e){e.preventDefault();
var f=document.getElementById('new-integration'),out=document.getElementById('test-result');out.textContent='Testing…';
try{var r=await fetch('/console/integrations/new/test',{method:'POST',headers:{'x-console-fragment':'1'},body:new URLSearchParams(new FormData(f))});
var doc=new DOMParser().parseFromString(await r.text(),'text/html');var res=doc.querySelector('#fragment');out.replaceChildren.apply(out,res?Array.from(res.childNodes):[document.createTextNode('Test failed: HTTP '+r.status)]);
}catch(err){out.textContent='Test failed: '+err.message}});`;

  function newInput(request: FastifyRequest): { platform: Platform; companyId: string; form: ReturnType<typeof parseIntegrationForm>; errors: FieldError[]; input: unknown } {
    const body = (request.body ?? {}) as FormBody;
    const platform = one(body, 'platform');
    if (!isPlatform(platform)) throw new ValidationError([{ field: 'platform', message: `must be one of: ${PLATFORMS.join(', ')}` }]);
    const session = request.consoleSession!;
    const companyId = session.scope.kind === 'company' ? session.scope.companyId : (one(body, 'companyId') ?? '').trim();
    const form = parseIntegrationForm(platform, body);
    const input = { platform, name: form.name ?? '', apiBaseUrl: form.apiBaseUrl ?? null, settings: form.settings, credentials: form.credentials, enabled: form.enabled, allowMissingResume: form.allowMissingResume };
    const checked = validateNewIntegration(input);
    const errors = [...validate(companyIdSchema, companyId, 'companyId').errors, ...(checked.ok ? [] : checked.errors)];
    return { platform, companyId, form, errors, input };
  }

  app.get<{ Querystring: { platform?: string } }>('/integrations/new', async (request, reply) =>
    newPage(request, reply, isPlatform(request.query.platform) ? request.query.platform : undefined),
  );

  app.post('/integrations/new/test', async (request, reply) => {
    const { platform, companyId, form, errors, input } = newInput(request);
    let result: Html;
    if (errors.length) {
      result = notice('error', html`Cannot test yet: ${errors.map((e) => `${e.field} ${e.message}`).join('; ')}`);
    } else {
      const checked = validateNewIntegration(input);
      const r = await testConnection(ctx, { id: '00000000-0000-0000-0000-000000000000', companyId, version: 0, ...(checked as { value: Omit<Integration, 'id' | 'companyId' | 'version'> }).value } as Integration);
      result = connectionNotice(r);
    }
    if (request.headers['x-console-fragment']) {
      return reply.header('content-type', 'text/html; charset=utf-8').header('cache-control', 'no-store').send(html`<div id="fragment">${result}</div>`.value);
    }
    // Without script: the whole form again (secrets are not echoed back).
    return newPage(request, reply, platform, { values: { ...form.echo, companyId }, errors, top: html`${result}${notice('info', 'Type the credentials again before saving: they are never sent back to the browser.')}`, enabled: form.enabled, allowMissingResume: form.allowMissingResume });
  });

  app.post('/integrations/new', async (request, reply) => {
    const { platform, companyId, form, errors } = newInput(request);
    if (errors.length) {
      return newPage(request, reply, platform, {
        values: { ...form.echo, companyId },
        errors,
        status: 400,
        enabled: form.enabled,
        allowMissingResume: form.allowMissingResume,
        top: notice('error', 'Not saved: fix the fields marked below. Secrets you typed were not kept; type them again.'),
      });
    }
    const checked = validateNewIntegration({ platform, name: form.name, apiBaseUrl: form.apiBaseUrl ?? null, settings: form.settings, credentials: form.credentials, enabled: form.enabled, allowMissingResume: form.allowMissingResume });
    if (!checked.ok) throw new ValidationError(checked.errors);
    const created = await repo.createIntegration(companyId, checked.value);
    request.log.info({ integrationId: created.id, companyId, platform }, 'integration created (console)');
    return reply.redirect(`/console/integrations/${created.id}`, 303);
  });

}
