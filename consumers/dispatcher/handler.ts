/**
 * The decision for one record (event + deps → outcome), shared by the dispatcher and every retry
 * tier:
 *
 *   bytes don't decode / unknown schema       → DLQ (raw bytes intact)
 *   already delivered to this integration      → acknowledged, no ATS call (delivery log)
 *   integration missing, disabled, mismatched  → DLQ
 *   circuit open / integration cooling down    → next tier without a call
 *   ATS success                                → delivery log, acknowledged
 *   ATS failure                                → retry router: next tier or DLQ
 *
 * Every branch ends durable (delivery log written, next topic acked) before the handler returns;
 * it throws only when that could not be done, so the offset stays uncommitted.
 */
import type { ApplicationSubmitted } from '../../lib/application.ts';
import { RelayError } from '../../lib/errors.ts';
import { failureHeaders, tryCountOf, type FailureInfo } from '../../lib/headers.ts';
import type { SendBatcher } from '../../lib/send-batcher.ts';
import type { Logger } from '../../lib/logger.ts';
import type { IntegrationRecord, DeliveryOutcome, DeliveryRecord } from '../../lib/integrations/repository.ts';
import { SerdeError } from '../../lib/serde.ts';
import { AtsError, type Connectors } from '../../connectors/index.ts';
import type { CircuitBreakers } from '../circuit-breaker.ts';
import type { InboundRecord } from '../engine/stream-consumer.ts';
import type { ConsumerMetrics } from '../metrics.ts';
import type { Route, RouteInput } from '../retry-router.ts';

/**
 * Error codes the dispatcher itself assigns (the connectors' ATS_ERROR_CODES cover what an ATS
 * answered). `rate_limited` is shared: here it means the integration is cooling down after a 429.
 */
export const DISPATCH_ERROR_CODES = {
  decode_failed: { retriable: false, meaning: 'the record value is not a decodable ApplicationSubmitted (bytes kept as they were)' },
  unknown_schema: { retriable: false, meaning: 'the record names a schema id the registry does not know' },
  integration_not_found: { retriable: false, meaning: "no integration with the event's integrationId" },
  integration_disabled: { retriable: false, meaning: 'the integration exists but is disabled' },
  integration_mismatch: { retriable: false, meaning: 'the integration belongs to another company than the event' },
  circuit_open: { retriable: true, meaning: "the integration's circuit is open after repeated failures; no call was made" },
  internal_error: { retriable: false, meaning: 'an unexpected error in ats-relay while delivering (a bug: see logs)' },
} as const;

export interface HandlerDeps {
  group: string;
  dlqTopic: string;
  codec: { decode(bytes: Buffer): Promise<ApplicationSubmitted> };
  integrations: { getIntegration(id: string): Promise<IntegrationRecord | null> };
  deliveries: {
    findDelivery(integrationId: string, applicationId: string): Promise<DeliveryRecord | null>;
    recordDeliveryOutcome(outcome: DeliveryOutcome): Promise<unknown>;
  };
  connectors: Pick<Connectors, 'deliver'>;
  /** Forwards to a retry tier or the DLQ; concurrent forwards share produce requests. */
  sender: Pick<SendBatcher, 'send'>;
  route: (input: RouteInput) => Route;
  breakers: CircuitBreakers;
  metrics: ConsumerMetrics;
  logger: Logger;
  now?: () => number;
}

interface Failure extends FailureInfo {
  retriable: boolean;
  retryAfterMs?: number | undefined;
}

export function createDeliveryHandler(deps: HandlerDeps): (record: InboundRecord, signal: AbortSignal) => Promise<void> {
  const now = deps.now ?? Date.now;

  async function forward(record: InboundRecord, failure: Failure, event: ApplicationSubmitted | undefined, attempted: boolean): Promise<void> {
    const route = deps.route({ retriable: failure.retriable, tryCount: tryCountOf(record.headers), retryAfterMs: failure.retryAfterMs });
    const t = now();
    const headers = failureHeaders(record, failure, {
      tryCount: route.tryCount,
      ...(route.kind === 'retry' ? { dueAt: route.dueAt } : { deadLetterReason: route.reason }),
      failedBy: deps.group,
      now: t,
    });
    // The log first: if the produce then fails we run again and the upsert is harmless.
    if (event && failure.code !== 'integration_not_found') {
      await deps.deliveries.recordDeliveryOutcome({
        integrationId: event.integrationId,
        applicationId: event.applicationId,
        eventId: event.eventId,
        status: route.kind === 'retry' ? 'retrying' : 'dead_lettered',
        attempted,
        error: { code: failure.code, message: failure.message, status: failure.status },
      });
    }
    const topic = route.kind === 'retry' ? route.tier.topic : deps.dlqTopic;
    await deps.sender.send(topic, [{ key: record.key, value: record.value, headers }]);
    const log = deps.logger.child({ topic: record.topic, partition: record.partition, offset: record.offset });
    if (route.kind === 'retry') {
      deps.metrics.retried.inc({ tier: route.tier.name });
      log.info({ code: failure.code, status: failure.status, tryCount: route.tryCount, to: topic, dueAt: route.dueAt }, 'delivery failed; scheduled a retry');
    } else {
      deps.metrics.deadLettered.inc({ code: failure.code });
      log.warn({ code: failure.code, status: failure.status, tryCount: route.tryCount, reason: route.reason }, 'dead-lettered');
    }
  }

  async function decode(record: InboundRecord): Promise<ApplicationSubmitted | Failure> {
    if (!record.value || record.value.length === 0) return { code: 'decode_failed', message: 'empty record value', status: undefined, retriable: false };
    try {
      return await deps.codec.decode(record.value);
    } catch (err) {
      if (err instanceof SerdeError && err.status === 404) {
        return { code: 'unknown_schema', message: err.message, status: undefined, retriable: false };
      }
      if (err instanceof RelayError && err.retriable) throw err; // registry down: stay uncommitted and try again
      return { code: 'decode_failed', message: (err as Error).message, status: undefined, retriable: false };
    }
  }

  return async function handle(record, signal) {
    const decoded = await decode(record);
    if (!('eventId' in decoded)) return forward(record, decoded, undefined, false);
    const event = decoded;

    const existing = await deps.deliveries.findDelivery(event.integrationId, event.applicationId);
    if (existing?.status === 'delivered') {
      deps.metrics.duplicates.inc({ reason: existing.eventId === event.eventId ? 'same_event' : 'already_delivered' });
      return;
    }

    const integration = await deps.integrations.getIntegration(event.integrationId);
    const refusal: Failure | undefined = !integration
      ? { code: 'integration_not_found', message: `integration ${event.integrationId} does not exist`, status: undefined, retriable: false }
      : !integration.enabled
        ? { code: 'integration_disabled', message: `integration ${integration.id} is disabled`, status: undefined, retriable: false }
        : integration.companyId !== event.companyId
          ? { code: 'integration_mismatch', message: `integration ${integration.id} does not belong to company ${event.companyId}`, status: undefined, retriable: false }
          : undefined;
    if (refusal || !integration) return forward(record, refusal!, event, false);

    const admission = deps.breakers.admit(integration.id);
    if (!admission.allowed) {
      const wait = Math.max(0, admission.untilMs - now());
      return forward(
        record,
        { code: admission.reason, message: `${admission.reason === 'circuit_open' ? 'circuit open' : 'cooling down after a 429'}: no call for ${wait} ms`, status: undefined, retriable: true, retryAfterMs: wait },
        event,
        false,
      );
    }

    const started = performance.now();
    let result;
    try {
      result = await deps.connectors.deliver(event, integration, signal);
    } catch (err) {
      deps.metrics.atsLatency.observe({ platform: integration.platform, outcome: 'failed' }, (performance.now() - started) / 1000);
      if (err instanceof AtsError) {
        deps.breakers.onFailure(integration.id, err.retriable, err.retryAfterMs);
        return forward(record, { code: err.code, message: err.message, status: err.status, retriable: err.retriable, retryAfterMs: err.retryAfterMs }, event, true);
      }
      deps.logger.error({ err, integrationId: integration.id, topic: record.topic, partition: record.partition, offset: record.offset }, 'unexpected error while delivering');
      return forward(record, { code: 'internal_error', message: (err as Error).message ?? String(err), status: undefined, retriable: false }, event, true);
    }
    deps.metrics.atsLatency.observe({ platform: integration.platform, outcome: 'delivered' }, (performance.now() - started) / 1000);
    deps.breakers.onSuccess(integration.id);
    // If this write fails the engine runs us again; the connector's search-before-create finds the
    // candidate it just created, so the ATS still sees one application.
    await deps.deliveries.recordDeliveryOutcome({
      integrationId: integration.id,
      applicationId: event.applicationId,
      eventId: event.eventId,
      status: 'delivered',
      attempted: true,
      externalCandidateId: result.externalCandidateId,
      externalApplicationId: result.externalApplicationId,
    });
    deps.metrics.delivered.inc({ platform: integration.platform });
  };
}
