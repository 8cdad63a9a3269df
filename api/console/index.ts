/**
 * The web console, served by the API process under /console: customers' admins manage their
 * integrations (customer-pages.ts); operators watch the pipeline, read topics and dead letters and
 * redrive them (operator-pages.ts).
 *
 * - Sign-in exchanges an API token for a session cookie (HttpOnly, SameSite=Strict, path /console,
 *   expiring); the session carries the token's scope, so tenant isolation is the REST API's: a
 *   company session gets 404 for another company's integration and for every operator page.
 * - Every POST (the only state-changing method the console uses) must carry the CSRF token of
 *   @fastify/csrf-protection (hidden `_csrf` field or `x-csrf-token` header); without it: 403.
 * - The pages call the same repository, validation, connectors and redrive code as REST and the
 *   CLIs; nothing here decides what is valid.
 */
import { createHash, randomBytes } from 'node:crypto';
import fastifyCookie from '@fastify/cookie';
import fastifyCsrf from '@fastify/csrf-protection';
import fastifyFormbody from '@fastify/formbody';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../../lib/config.ts';
import type { Pool } from '../../lib/db.ts';
import { RelayError } from '../../lib/errors.ts';
import type { Integration } from '../../registry/integration.ts';
import { notFound, RegistryError } from '../../registry/errors.ts';
import type { IntegrationRepository } from '../../registry/repository.ts';
import type { Scope } from '../../registry/scope.ts';
import type { Keyring } from '../../registry/keyring.ts';
import { createKafka, type KafkaClient } from '../../lib/kafka/index.ts';
import type { Logger } from '../../lib/logger.ts';
import { createEventCodec, type EventCodec } from '../../lib/serde.ts';
import { registerCustomerPages } from './customer-pages.ts';
import { html, type Renderable } from './html.ts';
import { csrfField, notice, renderPage, type NavKey } from './layout.ts';
import { registerOperatorPages } from './operator-pages.ts';
import { createRedriveRunner, type RedriveRunner } from './redrive-runner.ts';
import { createDeliveryStore, type DeliveryStore } from '../../consumers/dispatcher/delivery-store.ts';
import { createConsoleSessions, type ConsoleSession, type ConsoleSessions } from './sessions.ts';

export const SESSION_COOKIE = 'atsr_console';

export interface ConsoleDeps {
  config: Config;
  pool: Pool;
  repository: IntegrationRepository;
  /** Seals webhook secrets generated from the console (shown once). */
  keyring: Keyring;
  log: Logger;
  connectors?: { testConnection(integration: Integration, signal?: AbortSignal): Promise<void> } | undefined;
}

/** What the page modules share. Kafka pieces are created on first use (customer pages need none). */
export interface ConsoleContext extends ConsoleDeps {
  sessions: ConsoleSessions;
  /** The delivery log, read for the deliveries tab (the dispatcher writes it). */
  deliveries: DeliveryStore;
  /** Consumers and producers (record reads, redrives). */
  kafka(): KafkaClient;
  /** Metadata reads for pages (short retries). */
  adminKafka(): KafkaClient;
  codec(): EventCodec;
  redrives: RedriveRunner;
  /** Send a full page with the session's header and a fresh CSRF token. */
  page(request: FastifyRequest, reply: FastifyReply, o: { title: string; active?: NavKey; body: (csrf: string) => Renderable; status?: number; refreshSeconds?: number }): FastifyReply;
  /** The repository scope of the signed-in token (admin: everything). */
  scopeOf(request: FastifyRequest): Scope;
  /** Operator pages: a company session gets the same 404 as for anything that is not there. */
  requireAdmin(request: FastifyRequest): void;
}

declare module 'fastify' {
  interface FastifyRequest {
    consoleSession: ConsoleSession | undefined;
  }
}

const PUBLIC = new Set(['/console/sign-in']);

/** A `next` target after sign-in: only console paths (no open redirect). */
function safeNext(next: unknown): string {
  return typeof next === 'string' && /^\/console(\/[^/\\]|\/?$)/.test(next) && !next.includes('//') ? next : '/console/integrations';
}

export async function consolePlugin(app: FastifyInstance, deps: ConsoleDeps): Promise<void> {
  const { config, repository } = deps;
  const sessions = createConsoleSessions(deps.pool);
  // The CSRF secret cookie is signed; the signing key derives from the keyring (or is per process).
  const cookieSecret = createHash('sha256')
    .update(`ats-relay console cookies\u0000${config.crypto.encryptionKeys ?? randomBytes(32).toString('hex')}`)
    .digest('hex');
  const cookieOpts = { httpOnly: true, sameSite: 'strict' as const, path: '/console', secure: config.console.cookieSecure };

  await app.register(fastifyCookie, { secret: cookieSecret });
  await app.register(fastifyFormbody);
  await app.register(fastifyCsrf, { sessionPlugin: '@fastify/cookie', cookieKey: 'atsr_csrf', cookieOpts: { ...cookieOpts, signed: true } });

  let kafka: KafkaClient | undefined;
  let codec: EventCodec | undefined;
  let adminKafka: KafkaClient | undefined;
  const getKafka = (): KafkaClient => (kafka ??= createKafka(config.kafka, deps.log, { clientIdSuffix: 'console' }));
  // Metadata reads retry briefly: a page should say "Kafka unreachable" within seconds, not hang.
  const getAdminKafka = (): KafkaClient =>
    (adminKafka ??= createKafka(config.kafka, deps.log, { clientIdSuffix: 'console', retry: { retries: 2, initialRetryTime: 300, maxRetryTime: 2_000 }, connectionTimeoutMs: 3_000 }));
  const redrives = createRedriveRunner({ config, pool: deps.pool, kafka: getKafka, codec: () => getCodec(), log: deps.log });
  const getCodec = (): EventCodec => (codec ??= createEventCodec({ registryUrl: config.schemaRegistry.url, topic: config.topics.applications }));
  app.addHook('onClose', async () => redrives.close());

  const ctx: ConsoleContext = {
    ...deps,
    sessions,
    deliveries: createDeliveryStore(deps.pool),
    kafka: getKafka,
    adminKafka: getAdminKafka,
    codec: getCodec,
    redrives,
    page(request, reply, o) {
      const csrf = reply.generateCsrf();
      return reply
        .code(o.status ?? 200)
        .header('content-type', 'text/html; charset=utf-8')
        .header('cache-control', 'no-store')
        .header('x-frame-options', 'DENY')
        .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'")
        .header('referrer-policy', 'same-origin')
        .send(renderPage({ title: o.title, session: request.consoleSession, csrfToken: csrf, active: o.active, body: o.body(csrf), refreshSeconds: o.refreshSeconds }));
    },
    scopeOf: (request) => (request.consoleSession?.scope.kind === 'company' ? { companyId: request.consoleSession.scope.companyId } : {}),
    requireAdmin(request) {
      if (request.consoleSession?.scope.kind !== 'admin') throw notFound('page', request.url.split('?')[0]!);
    },
  };

  app.decorateRequest('consoleSession', undefined);

  app.addHook('onRequest', async (request, reply) => {
    const value = request.cookies[SESSION_COOKIE];
    request.consoleSession = value ? ((await sessions.find(value)) ?? undefined) : undefined;
    const path = request.url.split('?')[0]!;
    if (request.consoleSession || PUBLIC.has(path)) return;
    if (request.method === 'GET') return reply.redirect(`/console/sign-in?next=${encodeURIComponent(request.url)}`, 303);
    return ctx.page(request, reply, { title: 'Signed out', status: 401, body: () => notice('error', html`Your session has ended. <a href="/console/sign-in">Sign in again</a>.`) });
  });

  // Every state-changing request: the CSRF token must match the signed secret cookie.
  app.addHook('preHandler', (request, reply, done) => {
    if (request.method === 'GET' || request.method === 'HEAD') return done();
    app.csrfProtection(request, reply, done);
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, request, reply) => {
    if (err.code === 'FST_CSRF_INVALID_TOKEN' || err.code === 'FST_CSRF_MISSING_SECRET') {
      return ctx.page(request, reply, {
        title: 'Refused',
        status: 403,
        body: () => notice('error', 'Refused: this form had no valid security token (CSRF). Reload the page and try again.'),
      });
    }
    if (err instanceof RegistryError && err.code === 'not_found') {
      return ctx.page(request, reply, { title: 'Not found', status: 404, body: () => html`<h1>Not found</h1>${notice('error', 'There is nothing here, or it is not yours to see.')}<p><a href="/console/integrations">Back to integrations</a></p>` });
    }
    const status = err instanceof RelayError ? (err.status && err.status < 500 ? err.status : 503) : (err.statusCode ?? 500);
    if (status >= 500 && !(err instanceof RelayError)) request.log.error({ err: { name: err.name, message: err.message, code: err.code } }, 'console request failed');
    // Our own errors say what is wrong ("Kafka unreachable: …") and carry no secrets; others do not show.
    const message = err instanceof RelayError || status < 500 ? err.message : 'internal error; see the service logs';
    return ctx.page(request, reply, { title: 'Error', status, body: () => html`<h1>Something went wrong</h1>${notice('error', message)}` });
  });

  app.setNotFoundHandler((request, reply) =>
    ctx.page(request, reply, { title: 'Not found', status: 404, body: () => html`<h1>Not found</h1>${notice('error', 'There is nothing here, or it is not yours to see.')}` }),
  );

  // --- sign-in / sign-out ---

  const signInPage = (request: FastifyRequest, reply: FastifyReply, next: string, error?: string, status = 200): FastifyReply =>
    ctx.page(request, reply, {
      title: 'Sign in',
      status,
      body: (csrf) => html`<h1>Sign in</h1>
        ${error ? notice('error', error) : ''}
        <form method="post" action="/console/sign-in" class="card" style="max-width:36rem">
          ${csrfField(csrf)}<input type="hidden" name="next" value="${next}">
          <label for="token">API token</label>
          <input id="token" name="token" type="password" autocomplete="off" required autofocus aria-describedby="token-hint">
          <p class="hint" id="token-hint">A company or admin token (<code>npm run integrations -- create-token</code>). It is checked once and not kept in the browser: the session cookie lasts ${Math.round(config.console.sessionTtlMs / 3_600_000 * 10) / 10} h.</p>
          <div class="actions"><button type="submit">Sign in</button></div>
        </form>`,
    });

  app.get<{ Querystring: { next?: string } }>('/', async (request, reply) => reply.redirect('/console/integrations', 303));

  app.get<{ Querystring: { next?: string } }>('/sign-in', async (request, reply) => {
    if (request.consoleSession) return reply.redirect(safeNext(request.query.next), 303);
    return signInPage(request, reply, safeNext(request.query.next));
  });

  app.post<{ Body: { token?: string; next?: string } }>('/sign-in', async (request, reply) => {
    const token = typeof request.body?.token === 'string' ? request.body.token.trim() : '';
    const found = token ? await repository.authenticateToken(token) : null;
    const next = safeNext(request.body?.next);
    if (!found) return signInPage(request, reply, next, 'That token is not valid (unknown or revoked).', 401);
    const { value, expiresAt } = await sessions.create(found.id, config.console.sessionTtlMs);
    request.log.info({ tokenId: found.id, scope: found.scope.kind }, 'console sign-in');
    return reply.setCookie(SESSION_COOKIE, value, { ...cookieOpts, expires: expiresAt }).redirect(next, 303);
  });

  app.post('/sign-out', async (request, reply) => {
    const value = request.cookies[SESSION_COOKIE];
    if (value) await sessions.delete(value);
    return reply.clearCookie(SESSION_COOKIE, { path: '/console' }).redirect('/console/sign-in', 303);
  });

  registerCustomerPages(app, ctx);
  registerOperatorPages(app, ctx);
}
