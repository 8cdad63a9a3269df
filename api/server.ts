/**
 * The integrations HTTP API: the customer backend (company-scoped tokens) and operators (admin
 * tokens) create, read, update and delete ATS integrations, map jobs, test a connection and read
 * the delivery log. Credentials go in, and come back only masked.
 *
 * `buildApi` returns the Fastify instance without listening: api/cli.ts listens, tests use
 * `app.inject` or listen on port 0.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Config } from '../lib/config.ts';
import { errorBody } from '../lib/error-codes.ts';
import type { Keyring } from '../registry/keyring.ts';
import type { Pool } from '../lib/db.ts';
import { RelayError, truncate } from '../lib/errors.ts';
import type { Integration } from '../registry/integration.ts';
import type { Logger } from '../lib/logger.ts';
import { notFound, RegistryError, ValidationError } from '../registry/errors.ts';
import { validate, type JsonSchema } from '../registry/json-schema.ts';
import { maskCredentials } from '../registry/masking.ts';
import { applyIntegrationPatch } from '../registry/patch.ts';
import { registerInboundRoutes, WEBHOOK_ROUTE, type InboundApiDeps } from './inbound.ts';
import { createIntegrationRepository, type IntegrationRepository } from '../registry/repository.ts';
import { createDeliveryStore, DELIVERY_STATUSES, type DeliveryRecord, type DeliveryStatus } from '../consumers/dispatcher/delivery-store.ts';
import type { IntegrationRecord } from '../registry/integrations.ts';
import type { Scope } from '../registry/scope.ts';
import type { TokenScope } from '../registry/api-tokens.ts';
import {
  companyIdSchema,
  createIntegrationSchema,
  jobIdSchema,
  patchIntegrationSchema,
  type NewIntegrationInput,
  type IntegrationPatch,
} from '../registry/validation.ts';
import { consolePlugin } from './console/index.ts';

/** What the API needs from the connectors (connectors/index.ts `createConnectors`). */
export interface ConnectionTester {
  /** Resolves when the credentials and base URL work; throws (an ATS error) otherwise. */
  testConnection(integration: Integration, signal?: AbortSignal): Promise<void>;
}

export interface ApiDeps {
  config: Config;
  pool: Pool;
  keyring: Keyring;
  log: Logger;
  /** Absent until connectors are wired: POST /integrations/:id/test then answers 501. */
  connectors?: ConnectionTester | undefined;
  /** Defaults to a repository over `pool` and `keyring`. */
  repository?: IntegrationRepository;
  /** The way back: job import's listing (connectors) and the replay-window clock (api/inbound.ts). */
  jobLister?: InboundApiDeps['jobLister'];
  now?: InboundApiDeps['now'];
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: TokenScope | undefined;
  }
}

// The webhook receiver is public: vendors authenticate by signature (api/inbound.ts), not by token.
const PUBLIC_ROUTES = new Set(['/healthz', '/readyz', WEBHOOK_ROUTE]);
/** The web console (api/console/) authenticates with its own session cookie, not a bearer header. */
const isConsolePath = (url: string): boolean => url === '/console' || url.startsWith('/console/') || url.startsWith('/console?');

// --- request schemas -------------------------------------------------------------------------------

// Ids are not pattern-checked: an id that cannot exist is simply not found (404), like any unknown id.
const integrationParams: JsonSchema = { type: 'object', required: ['id'], properties: { id: { type: 'string' } } };
const companyParams: JsonSchema = { type: 'object', required: ['companyId'], properties: { companyId: companyIdSchema } };
const jobParams: JsonSchema = { type: 'object', required: ['id', 'jobId'], properties: { id: { type: 'string' }, jobId: jobIdSchema } };
const jobMappingBody: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['externalJobId'],
  properties: { externalJobId: { type: 'string', minLength: 1, maxLength: 200 } },
};
const deliveriesQuery: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    status: { type: 'string', enum: DELIVERY_STATUSES },
    limit: { type: 'integer', minimum: 1, maximum: 200, default: 50 },
    cursor: { type: 'string', minLength: 1, maxLength: 200 },
  },
};

/** Query strings and path params arrive as text: turn "20" into 20 where the schema wants a number. */
function coerceScalars(schema: JsonSchema, data: unknown): unknown {
  if (!data || typeof data !== 'object' || !schema.properties) return data;
  const out: Record<string, unknown> = { ...(data as Record<string, unknown>) };
  for (const [key, sub] of Object.entries(schema.properties)) {
    const v = out[key];
    if (typeof v !== 'string') continue;
    if ((sub.type === 'integer' || sub.type === 'number') && /^-?\d+(\.\d+)?$/.test(v)) out[key] = Number(v);
    else if (sub.type === 'boolean' && (v === 'true' || v === 'false')) out[key] = v === 'true';
  }
  return out;
}

// --- views -----------------------------------------------------------------------------------------

/** The integration as the API shows it: everything but the secrets, which are masked. */
export function integrationView(i: IntegrationRecord): Record<string, unknown> {
  return {
    id: i.id,
    companyId: i.companyId,
    platform: i.platform,
    name: i.name,
    apiBaseUrl: i.apiBaseUrl,
    settings: i.settings,
    credentials: maskCredentials(i.credentials),
    enabled: i.enabled,
    allowMissingResume: i.allowMissingResume,
    version: i.version,
    createdAt: i.createdAt.toISOString(),
    updatedAt: i.updatedAt.toISOString(),
    lastDeliveryAt: i.lastDeliveryAt?.toISOString() ?? null,
    lastError: i.lastError,
    lastErrorAt: i.lastErrorAt?.toISOString() ?? null,
  };
}

function deliveryView(d: DeliveryRecord): Record<string, unknown> {
  const iso = (x: Date | null): string | null => x?.toISOString() ?? null;
  return {
    id: d.id,
    applicationId: d.applicationId,
    eventId: d.eventId,
    status: d.status,
    tryCount: d.tryCount,
    error: d.errorCode ? { code: d.errorCode, message: d.errorMessage, status: d.errorStatus } : null,
    externalCandidateId: d.externalCandidateId,
    externalApplicationId: d.externalApplicationId,
    firstAttemptAt: iso(d.firstAttemptAt),
    lastAttemptAt: iso(d.lastAttemptAt),
    deliveredAt: iso(d.deliveredAt),
    createdAt: d.createdAt.toISOString(),
    updatedAt: d.updatedAt.toISOString(),
  };
}

// --- the app ---------------------------------------------------------------------------------------

export function buildApi(deps: ApiDeps): FastifyInstance {
  const { config, pool, log } = deps;
  const repo = deps.repository ?? createIntegrationRepository({ pool, keyring: deps.keyring });
  const deliveries = createDeliveryStore(pool);
  const app = Fastify({
    loggerInstance: log.child({ component: 'api' }) as FastifyBaseLogger,
    bodyLimit: 256 * 1024,
  });

  app.decorateRequest('principal', undefined);

  app.setValidatorCompiler<JsonSchema>(({ schema, httpPart }) => (data: unknown) => {
    const input = httpPart === 'body' ? data : coerceScalars(schema, data);
    const { value, errors } = validate(schema, input);
    return errors.length ? { error: new ValidationError(errors) } : { value };
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, request, reply) => {
    if (err instanceof ValidationError) {
      return reply.code(400).send({ error: err.code, message: err.message, fields: err.fields });
    }
    if (err instanceof RegistryError) {
      return reply.code(err.status ?? 500).send({ error: err.code, message: err.message });
    }
    const status = err.statusCode ?? 500;
    if (status >= 500) {
      request.log.error({ err: err instanceof RelayError ? err.toJSON() : { name: err.name, message: err.message, code: err.code } }, 'request failed');
      return reply.code(500).send(errorBody('internal_error', 'internal error; see the service logs'));
    }
    // Fastify's own 4xx (malformed JSON, wrong content type, body too large).
    return reply.code(status).send(errorBody(status === 415 ? 'unsupported_media_type' : status === 413 ? 'payload_too_large' : 'bad_request', err.message));
  });

  app.setNotFoundHandler((request, reply) => reply.code(404).send(errorBody('not_found', `no route ${request.method} ${request.url.split('?')[0]}`)));

  app.addHook('onRequest', async (request, reply) => {
    if (PUBLIC_ROUTES.has(request.routeOptions.url ?? '') || isConsolePath(request.url)) return;
    const header = request.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const token = m ? await repo.authenticateToken(m[1]!) : null;
    if (!token) {
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .send(errorBody('unauthorized', 'send "Authorization: Bearer <token>" with a valid API token'));
    }
    request.principal = token.scope;
  });

  const scopeOf = (request: FastifyRequest): Scope =>
    request.principal?.kind === 'company' ? { companyId: request.principal.companyId } : {};

  /** A company token addressing another company: answer as if nothing were there. */
  const assertCompany = (request: FastifyRequest, companyId: string): void => {
    const p = request.principal;
    if (p?.kind === 'company' && p.companyId !== companyId) throw notFound('company', companyId);
  };

  async function loadIntegration(request: FastifyRequest, id: string): Promise<IntegrationRecord> {
    const found = await repo.getIntegration(id, scopeOf(request));
    if (!found) throw notFound('integration', id);
    return found;
  }

  void app.register(consolePlugin, { prefix: '/console', config, pool, repository: repo, keyring: deps.keyring, log, connectors: deps.connectors });

  // --- probes ---

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    try {
      await pool.query('SELECT 1');
      return { status: 'ready' };
    } catch {
      return reply.code(503).send({ status: 'unavailable', message: 'database unreachable' });
    }
  });

  // --- integrations ---

  app.get<{ Params: { companyId: string } }>('/companies/:companyId/integrations', { schema: { params: companyParams } }, async (request) => {
    assertCompany(request, request.params.companyId);
    const items = await repo.listIntegrations({ companyId: request.params.companyId });
    return { items: items.map(integrationView) };
  });

  app.post<{ Params: { companyId: string }; Body: NewIntegrationInput }>(
    '/companies/:companyId/integrations',
    { schema: { params: companyParams, body: createIntegrationSchema } },
    async (request, reply) => {
      assertCompany(request, request.params.companyId);
      const created = await repo.createIntegration(request.params.companyId, request.body);
      request.log.info({ integrationId: created.id, companyId: created.companyId, platform: created.platform }, 'integration created');
      return reply.code(201).header('location', `/integrations/${created.id}`).send(integrationView(created));
    },
  );

  app.get<{ Params: { id: string } }>('/integrations/:id', { schema: { params: integrationParams } }, async (request) =>
    integrationView(await loadIntegration(request, request.params.id)),
  );

  app.patch<{ Params: { id: string }; Body: IntegrationPatch }>(
    '/integrations/:id',
    { schema: { params: integrationParams, body: patchIntegrationSchema } },
    async (request) => {
      const current = await loadIntegration(request, request.params.id);
      const updated = await applyIntegrationPatch(repo, current, request.body, scopeOf(request));
      request.log.info({ integrationId: updated.id, version: updated.version, fields: Object.keys(request.body) }, 'integration updated');
      return integrationView(updated);
    },
  );

  app.delete<{ Params: { id: string } }>('/integrations/:id', { schema: { params: integrationParams } }, async (request, reply) => {
    if (!(await repo.deleteIntegration(request.params.id, scopeOf(request)))) throw notFound('integration', request.params.id);
    request.log.info({ integrationId: request.params.id }, 'integration deleted');
    return reply.code(204).send();
  });

  // --- job mappings ---

  app.get<{ Params: { id: string } }>('/integrations/:id/jobs', { schema: { params: integrationParams } }, async (request) => {
    const items = await repo.listJobMappings(request.params.id, scopeOf(request));
    return {
      items: items.map((m) => ({ jobId: m.jobId, externalJobId: m.externalJobId, createdAt: m.createdAt.toISOString(), updatedAt: m.updatedAt.toISOString() })),
    };
  });

  app.put<{ Params: { id: string; jobId: string }; Body: { externalJobId: string } }>(
    '/integrations/:id/jobs/:jobId',
    { schema: { params: jobParams, body: jobMappingBody } },
    async (request, reply) => {
      const { mapping, created } = await repo.putJobMapping(request.params.id, request.params.jobId, request.body.externalJobId, scopeOf(request));
      return reply.code(created ? 201 : 200).send({ jobId: mapping.jobId, externalJobId: mapping.externalJobId, createdAt: mapping.createdAt.toISOString(), updatedAt: mapping.updatedAt.toISOString() });
    },
  );

  app.delete<{ Params: { id: string; jobId: string } }>('/integrations/:id/jobs/:jobId', { schema: { params: jobParams } }, async (request, reply) => {
    if (!(await repo.deleteJobMapping(request.params.id, request.params.jobId, scopeOf(request)))) {
      throw notFound('job mapping', `${request.params.id}/${request.params.jobId}`);
    }
    return reply.code(204).send();
  });

  // --- connection test ---

  app.post<{ Params: { id: string } }>('/integrations/:id/test', { schema: { params: integrationParams } }, async (request, reply) => {
    const integration = await loadIntegration(request, request.params.id);
    if (!deps.connectors) {
      return reply.code(501).send(errorBody('not_implemented', 'connection tests need the ATS connectors, which this build does not include yet'));
    }
    const started = Date.now();
    try {
      await deps.connectors.testConnection(integration, AbortSignal.timeout(config.ats.requestTimeoutMs * 2));
      return { ok: true, platform: integration.platform, durationMs: Date.now() - started };
    } catch (err) {
      const e = err as Partial<RelayError> & Error;
      request.log.warn({ integrationId: integration.id, code: e.code, status: e.status }, 'connection test failed');
      return {
        ok: false,
        platform: integration.platform,
        durationMs: Date.now() - started,
        error: { code: e.code ?? 'unknown', status: e.status ?? null, retriable: e.retriable ?? false, message: truncate(e.message ?? String(err), 500) },
      };
    }
  });

  // --- delivery log ---

  app.get<{ Params: { id: string }; Querystring: { status?: DeliveryStatus; limit: number; cursor?: string } }>(
    '/integrations/:id/deliveries',
    { schema: { params: integrationParams, querystring: deliveriesQuery } },
    async (request) => {
      const integration = await loadIntegration(request, request.params.id);
      const page = await deliveries.listDeliveries(integration.id, request.query);
      return { items: page.items.map(deliveryView), nextCursor: page.nextCursor };
    },
  );

  registerInboundRoutes(app, { config, pool, keyring: deps.keyring, log, repo, jobLister: deps.jobLister, ...(deps.now ? { now: deps.now } : {}) });

  return app;
}
