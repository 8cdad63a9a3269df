/**
 * The API's way back: the public webhook receiver and the authenticated routes around it (webhook
 * URL and secret, job import runs, imported jobs, mapping suggestions). Registered by
 * api/server.ts; kept apart so the receiver's raw-body parsing stays in its own Fastify scope.
 *
 * The receiver answers, in order: unknown integration 404 → disabled 410 → no secret or a bad /
 * stale signature 401 (no detail: the reason goes to our log only) → body over the cap 413 →
 * accepted 200 (Greenhouse and Workable count only exactly 200 as success). "Accepted" means the
 * inbox transaction committed; nothing is called before answering.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Config } from '../lib/config.ts';
import { errorBody } from '../lib/error-codes.ts';
import type { Keyring } from '../registry/keyring.ts';
import type { Pool } from '../lib/db.ts';
import type { Logger } from '../lib/logger.ts';
import { notFound, ValidationError } from '../registry/errors.ts';
import { validate, type JsonSchema } from '../registry/json-schema.ts';
import type { IntegrationRecord } from '../registry/integrations.ts';
import type { IntegrationRepository } from '../registry/repository.ts';
import type { Scope } from '../registry/scope.ts';
import { JobImportError, listSyncRuns, startJobImport, suggestJobMappings, type JobLister } from '../producers/jobs/job-import.ts';
import { acceptWebhook } from '../producers/webhooks/inbox.ts';
import { interpretWebhook } from '../producers/webhooks/interpret.ts';
import { createWebhookSecrets, isLeverWebhookEvent, webhookEventProblem, webhookSigning, webhookUrl, webhookVerifiable } from '../producers/webhooks/secrets.ts';
import { leverEventName, verifyWebhook } from '../producers/webhooks/signatures.ts';

export const WEBHOOK_ROUTE = '/integrations/:id/webhook';

export interface InboundApiDeps {
  config: Config;
  pool: Pool;
  keyring: Keyring;
  log: Logger;
  repo: IntegrationRepository;
  /** The connectors' job listing; absent in a build without connectors (sync then answers 501). */
  jobLister?: JobLister | undefined;
  /** Clock for the replay window (tests). */
  now?: () => number;
}

const idParams: JsonSchema = { type: 'object', required: ['id'], properties: { id: { type: 'string' } } };
const secretBody: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    secret: { type: 'string', minLength: 16, maxLength: 500 },
    // Lever only (one signature token per webhook, i.e. per event type); checked against the platform in the handler.
    event: { type: 'string', minLength: 1, maxLength: 100 },
  },
};
const syncQuery: JsonSchema = { type: 'object', additionalProperties: false, properties: { full: { type: 'string', enum: ['true', 'false'] } } };
const syncBody: JsonSchema = { type: 'object', additionalProperties: false, properties: { full: { type: 'boolean' } } };
const suggestionsBody: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['jobs'],
  properties: {
    // Items are checked in the handler (the registry's validator has no `items`).
    jobs: { type: 'array' },
  },
};

export function registerInboundRoutes(app: FastifyInstance, deps: InboundApiDeps): void {
  const { config, pool, repo } = deps;
  const secrets = createWebhookSecrets({ pool, keyring: deps.keyring });
  const now = deps.now ?? Date.now;
  const scopeOf = (request: FastifyRequest): Scope => (request.principal?.kind === 'company' ? { companyId: request.principal.companyId } : {});
  const load = async (request: FastifyRequest, id: string): Promise<IntegrationRecord> => {
    const found = await repo.getIntegration(id, scopeOf(request));
    if (!found) throw notFound('integration', id);
    return found;
  };

  // --- the public receiver, in a scope of its own that keeps bodies as raw bytes ---

  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: config.inbound.webhookMaxBytes }, (_request, body, done) => done(null, body));

    scope.post<{ Params: { id: string } }>(WEBHOOK_ROUTE, async (request, reply) => {
      const integration = await repo.getIntegration(request.params.id);
      if (!integration) return reply.code(404).send(errorBody('not_found'));
      if (!integration.enabled) return reply.code(410).send(errorBody('gone'));
      const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const log = request.log.child({ integrationId: integration.id, platform: integration.platform });
      // Lever signs each webhook (one per event type) with its own token: the body's event picks it.
      const event = integration.platform === 'lever' ? leverEventName(body) : undefined;
      const key = await secrets.signingKey(integration, event);
      const verified = key ? verifyWebhook(integration.platform, request.headers, body, key, { now: now(), toleranceMs: config.inbound.webhookToleranceMs }) : { ok: false as const, reason: 'no_secret' };
      if (!verified.ok) {
        // The event name (a known one only: the body is unverified) tells the operator which of Lever's tokens to check.
        log.warn({ reason: verified.reason, bytes: body.length, ...(isLeverWebhookEvent(event) ? { event } : {}) }, 'webhook refused');
        return reply.code(401).send(errorBody('unauthorized'));
      }
      const signal = interpretWebhook(integration.platform, verified.json, request.headers);
      const result = await acceptWebhook({ pool, statusTopic: config.inbound.statusTopic }, integration, signal, body, verified.json, now());
      log.info({ outcome: result.outcome, vendorEvent: signal.vendorEvent, applicationId: result.applicationId, eventId: result.eventId }, 'webhook accepted');
      return reply.code(200).send({ ok: true });
    });
  });

  // --- webhook URL and secret ---

  app.get<{ Params: { id: string } }>('/integrations/:id/webhook', { schema: { params: idParams } }, async (request) => {
    const integration = await load(request, request.params.id);
    const info = await secrets.info(integration.id);
    const lever = integration.platform === 'lever';
    return {
      url: webhookUrl(config.inbound.publicBaseUrl, integration.id),
      platform: integration.platform,
      signedWith: webhookSigning(integration.platform),
      secretSet: webhookVerifiable(integration.platform, info),
      // The integration-wide secret's.
      secretRotatedAt: info.shared?.rotatedAt.toISOString() ?? null,
      // Lever: the events with a token of their own (never the tokens); any other event is checked with the integration-wide secret.
      ...(lever ? { eventTokens: info.events.map((e) => ({ event: e.event, rotatedAt: e.rotatedAt.toISOString() })) } : {}),
    };
  });

  /**
   * Generate (or, for Lever's signature token, set) the secret; the answer is the only time it is shown.
   * `{secret, event}` stores the token of one Lever webhook (Lever issues one per event type).
   */
  app.post<{ Params: { id: string }; Body: { secret?: string; event?: string } | undefined }>(
    '/integrations/:id/webhook-secret',
    // The body is optional (no body = generate), so it is checked here rather than by the route schema.
    { schema: { params: idParams } },
    async (request) => {
      const integration = await load(request, request.params.id);
      if (request.body !== undefined && request.body !== null) {
        const { errors } = validate(secretBody, request.body);
        if (errors.length) throw new ValidationError(errors);
      }
      const event = request.body?.event;
      if (event !== undefined) {
        const problem = webhookEventProblem(integration.platform, event);
        if (problem) throw new ValidationError([{ field: 'event', message: problem }]);
        // A generated value is useless here: Lever issues each webhook's token, we only store it.
        if (request.body?.secret === undefined) throw new ValidationError([{ field: 'secret', message: "is required with event: paste the signature token Lever shows for that event's webhook" }]);
      }
      const secret = await secrets.rotate(integration.id, request.body?.secret, event);
      request.log.info({ integrationId: integration.id, ...(event ? { event } : {}) }, 'webhook secret rotated');
      // A Lever event's token came from the caller, who has it: it is not echoed back.
      if (event) return { url: webhookUrl(config.inbound.publicBaseUrl, integration.id), event, tokenSet: true };
      return { url: webhookUrl(config.inbound.publicBaseUrl, integration.id), secret };
    },
  );

  // --- job import ---

  /** `?full=true` or body `{"full": true}` forces a full run (an operator who suspects a missed delete). */
  app.post<{ Params: { id: string }; Querystring: { full?: 'true' | 'false' }; Body: { full?: boolean } | undefined }>(
    '/integrations/:id/sync',
    // The body is optional (no body = the usual run), so it is checked here rather than by the route schema.
    { schema: { params: idParams, querystring: syncQuery } },
    async (request, reply) => {
      const integration = await load(request, request.params.id);
      if (request.body !== undefined && request.body !== null) {
        const { errors } = validate(syncBody, request.body);
        if (errors.length) throw new ValidationError(errors);
      }
      if (!deps.jobLister) return reply.code(501).send(errorBody('not_implemented', 'job import needs the ATS connectors'));
      const full = request.query.full === 'true' || request.body?.full === true;
      try {
        const run = await startJobImport({ pool, lister: deps.jobLister, jobsTopic: config.inbound.jobsTopic, policy: config.inbound.jobSync, logger: deps.log }, integration, 'api', { full });
        void run.done;
        return reply
          .code(202)
          .header('location', `/integrations/${integration.id}/syncs`)
          .send({ runId: run.runId, mode: run.mode, fullReason: run.fullReason, sinceMark: run.sinceMark });
      } catch (err) {
        if (err instanceof JobImportError) return reply.code(err.status ?? 409).send({ error: err.code, message: err.message });
        throw err;
      }
    },
  );

  app.get<{ Params: { id: string } }>('/integrations/:id/syncs', { schema: { params: idParams } }, async (request) => {
    const integration = await load(request, request.params.id);
    return { items: await listSyncRuns(pool, integration.id) };
  });

  app.get<{ Params: { id: string } }>('/integrations/:id/ats-jobs', { schema: { params: idParams } }, async (request) => {
    const integration = await load(request, request.params.id);
    const { rows } = await pool.query<Record<string, unknown>>(
      `SELECT external_job_id, title, requisition_code, location, status, updated_at, closed_at FROM ats_jobs WHERE integration_id = $1 ORDER BY status DESC, title`,
      [integration.id],
    );
    return {
      items: rows.map((r) => ({
        externalJobId: r.external_job_id,
        title: r.title,
        requisitionCode: r.requisition_code,
        location: r.location,
        status: r.status,
        updatedAt: (r.updated_at as Date).toISOString(),
        closedAt: (r.closed_at as Date | null)?.toISOString() ?? null,
      })),
    };
  });

  app.post<{ Params: { id: string }; Body: { jobs: Array<{ jobId: string; title?: string; requisitionCode?: string }> } }>(
    '/integrations/:id/job-suggestions',
    { schema: { params: idParams, body: suggestionsBody } },
    async (request) => {
      const integration = await load(request, request.params.id);
      const jobs = request.body.jobs;
      const bad = jobs.findIndex((j) => !j || typeof j !== 'object' || typeof j.jobId !== 'string' || !j.jobId || (j.title !== undefined && typeof j.title !== 'string') || (j.requisitionCode !== undefined && typeof j.requisitionCode !== 'string'));
      if (bad >= 0 || jobs.length > 1_000) throw new ValidationError([{ field: bad >= 0 ? `jobs.${bad}` : 'jobs', message: bad >= 0 ? 'must be {jobId, title?, requisitionCode?}' : 'at most 1000 jobs' }]);
      return { items: await suggestJobMappings(pool, integration.id, jobs) };
    },
  );
}
