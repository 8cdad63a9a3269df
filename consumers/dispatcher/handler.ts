/**
 * The decision for one record (event + deps → outcome), shared by the dispatcher and every retry
 * tier:
 *
 *   this group already routed this very record     → acknowledged, no ATS call (replay after a crash)
 *   bytes don't decode / unknown schema             → DLQ (raw bytes intact)
 *   already delivered to this integration           → acknowledged, no ATS call (delivery log)
 *   integration missing, disabled, mismatched       → DLQ
 *   circuit open                                    → next tier without a call
 *   throttled (cooling down after a 429, no slot)   → deferred: waits in process or parks on a tier, no try used
 *   another process holds the application's lease   → deferred, no try used
 *   ATS success                                     → delivery log, acknowledged
 *   ATS failure                                     → retry router: next tier or DLQ
 *
 * Every branch ends durable (delivery log written, next topic acked, route recorded) before the
 * handler returns — or answers "again at retryAt" for a short in-process wait; it throws only when
 * the outcome could not be made durable, so the offset stays uncommitted.
 */
import type { ApplicationSubmitted } from '../../lib/application.ts';
import { RelayError } from '../../lib/errors.ts';
import type { RetryTier } from '../../lib/config.ts';
import { deferralHeaders, failureHeaders, HEADER, headerInt, tryCountOf, type FailureInfo } from '../../lib/headers.ts';
import type { SendBatcher } from '../../lib/send-batcher.ts';
import type { Logger } from '../../lib/logger.ts';
import type { IntegrationRecord } from '../../registry/integrations.ts';
import type { DeliveryOutcome, DeliveryRecord } from './delivery-store.ts';
import { SerdeError } from '../../lib/serde.ts';
import { AtsError, type Connectors } from '../../connectors/index.ts';
import type { CircuitBreakers } from './circuit-breaker.ts';
import type { HandleResult, InboundRecord } from './stream-consumer.ts';
import type { ConsumerMetrics } from './metrics.ts';
import type { Route, RouteInput } from './retry-router.ts';
import type { DeliveryClaims, RecordCoordinates } from './delivery-claims.ts';
import type { ThrottleLog } from './throttle-log.ts';
import { DEFERRAL_DEFAULTS, deferredDueAt, parkedWaitMs, ParkingQueue, parkingTier, type DeferralOptions, type DeferralReason } from './deferral.ts';

export interface HandlerDeps {
  group: string;
  dlqTopic: string;
  codec: { decode(bytes: Buffer): Promise<ApplicationSubmitted> };
  integrations: { getIntegration(id: string): Promise<IntegrationRecord | null> };
  deliveries: {
    check(at: RecordCoordinates, integrationId: string, applicationId: string): Promise<{ routed: boolean; delivery: DeliveryRecord | null }>;
    recordDeliveryOutcome(outcome: DeliveryOutcome): Promise<unknown>;
  };
  connectors: Pick<Connectors, 'deliver'>;
  /** Forwards to a retry tier or the DLQ; concurrent forwards share produce requests. */
  sender: Pick<SendBatcher, 'send'>;
  route: (input: RouteInput) => Route;
  breakers: CircuitBreakers;
  /** Routes taken and leases held, in PostgreSQL: one live delivery per application. */
  claims: DeliveryClaims;
  /** The retry ladder; deferred records are parked on it without using a try. */
  tiers: RetryTier[];
  deferral?: Partial<DeferralOptions>;
  /** Throttling episodes per integration, for the console, digests and alerts (throttle-log.ts). */
  throttling?: Pick<ThrottleLog, 'deferred' | 'delivered'>;
  /** Time one delivery takes of the integration's rate budget (undefined: no budget known). */
  paceMs?: (integration: IntegrationRecord) => number | undefined;
  metrics: ConsumerMetrics;
  logger: Logger;
  now?: () => number;
  random?: () => number;
}

interface Failure extends FailureInfo {
  retriable: boolean;
  retryAfterMs?: number | undefined;
}

export function createDeliveryHandler(deps: HandlerDeps): (record: InboundRecord, signal: AbortSignal) => Promise<HandleResult> {
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  const deferral: DeferralOptions = { ...DEFERRAL_DEFAULTS, ...deps.deferral };
  /** Records waiting in process to run again, and how many of each integration's wait at once. */
  const waiting = new WeakMap<InboundRecord, { integrationId: string; rounds: number }>();
  const waitingPerIntegration = new Map<string, number>();
  const parking = new ParkingQueue();
  const coordinates = (record: InboundRecord): RecordCoordinates => ({ group: deps.group, topic: record.topic, partition: record.partition, offset: record.offset });

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
        candidateEmail: event.candidate.email,
        status: route.kind === 'retry' ? 'retrying' : 'dead_lettered',
        attempted,
        error: { code: failure.code, message: failure.message, status: failure.status },
      });
    }
    const topic = route.kind === 'retry' ? route.tier.topic : deps.dlqTopic;
    await deps.sender.send(topic, [{ key: record.key, value: record.value, headers }]);
    // Only after the produce is acknowledged: a route recorded for a copy that was never written
    // would acknowledge the replay and lose the record.
    await deps.claims.recordRoute({ ...coordinates(record), integrationId: event?.integrationId, applicationId: event?.applicationId, routedTo: topic });
    const log = deps.logger.child({ topic: record.topic, partition: record.partition, offset: record.offset });
    if (route.kind === 'retry') {
      deps.metrics.retried.inc({ tier: route.tier.name });
      log.info({ code: failure.code, status: failure.status, tryCount: route.tryCount, to: topic, dueAt: route.dueAt }, 'delivery failed; scheduled a retry');
    } else {
      deps.metrics.deadLettered.inc({ code: failure.code });
      log.warn({ code: failure.code, status: failure.status, tryCount: route.tryCount, reason: route.reason }, 'dead-lettered');
    }
  }

  /**
   * Throttling is not failure (see deferral.ts): a short wait in process without a slot, or a
   * deferral hop to a tier; `ats-try-count` is left as it was either way.
   */
  async function defer(record: InboundRecord, event: ApplicationSubmitted, reason: DeferralReason, waitMs: number, rounds: number, paceMs = 0): Promise<HandleResult> {
    const t = now();
    const dueAt = deferredDueAt(waitMs, t, random, deferral);
    const integrationId = event.integrationId;
    const throttled = { integrationId, companyId: event.companyId, platform: event.platform };
    const waitingNow = waitingPerIntegration.get(integrationId) ?? 0;
    if (waitMs <= deferral.inProcessMaxWaitMs && rounds < deferral.maxRoundsInProcess && waitingNow < deferral.maxWaitingPerIntegration) {
      waiting.set(record, { integrationId, rounds: rounds + 1 });
      waitingPerIntegration.set(integrationId, waitingNow + 1);
      deps.metrics.deferred.inc({ reason, where: 'in_process' });
      if (reason === 'rate_limited') deps.throttling?.deferred(throttled, dueAt);
      return { retryAt: dueAt };
    }
    const hops = headerInt(record.headers, HEADER.deferralCount) ?? 0;
    const earliest = deferredDueAt(parkedWaitMs(waitMs, hops, deferral), t, random, deferral);
    const parkedDueAt = reason === 'rate_limited' ? parking.slot(integrationId, earliest, paceMs, t) : earliest;
    const tier = parkingTier(deps.tiers, parkedDueAt - t);
    const headers = deferralHeaders(record, { reason, dueAt: parkedDueAt, failedBy: deps.group });
    await deps.sender.send(tier.topic, [{ key: record.key, value: record.value, headers }]);
    await deps.claims.recordRoute({ ...coordinates(record), integrationId, applicationId: event.applicationId, routedTo: tier.topic });
    deps.metrics.deferred.inc({ reason, where: 'parked' });
    if (reason === 'rate_limited') deps.throttling?.deferred(throttled, parkedDueAt);
    deps.logger
      .child({ topic: record.topic, partition: record.partition, offset: record.offset })
      .debug({ reason, integrationId, to: tier.topic, dueAt: parkedDueAt, waitMs, hops: hops + 1 }, 'deferred: parked without using a try');
  }

  async function decode(record: InboundRecord): Promise<ApplicationSubmitted | Failure> {
    if (!record.value || record.value.length === 0) return { code: 'decode_failed', message: 'empty record value', status: undefined, retriable: false };
    try {
      return await deps.codec.decode(record.value);
    } catch (err) {
      if (err instanceof RelayError && err.retriable) throw err; // registry down: stay uncommitted and try again
      // decode_failed or unknown_schema: the bytes stay as they were for the DLQ.
      if (err instanceof SerdeError) return { code: err.code, message: err.message, status: undefined, retriable: false };
      return { code: 'decode_failed', message: (err as Error).message, status: undefined, retriable: false };
    }
  }

  return async function handle(record, signal) {
    const returning = waiting.get(record);
    if (returning) {
      waiting.delete(record);
      waitingPerIntegration.set(returning.integrationId, Math.max(0, (waitingPerIntegration.get(returning.integrationId) ?? 1) - 1));
    }
    const rounds = returning?.rounds ?? 0;

    // The route check and the delivery log are one statement (coalesced with other records'): a record
    // at a steady trickle would otherwise pay two PostgreSQL round trips before any decision.
    const decoded = await decode(record);
    if (!('eventId' in decoded)) {
      if (await deps.claims.wasRouted(coordinates(record))) {
        deps.metrics.duplicates.inc({ reason: 'already_routed' });
        return;
      }
      return forward(record, decoded, undefined, false);
    }
    const event = decoded;
    const { routed, delivery: existing } = await deps.deliveries.check(coordinates(record), event.integrationId, event.applicationId);
    if (routed) {
      // Consumed again after a crash before the offset commit: its copy is already on its way.
      deps.metrics.duplicates.inc({ reason: 'already_routed' });
      return;
    }
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
      if (admission.reason === 'rate_limited') return defer(record, event, 'rate_limited', wait, rounds, deps.paceMs?.(integration));
      return forward(record, { code: admission.reason, message: `circuit open: no call for ${wait} ms`, status: undefined, retriable: true, retryAfterMs: wait }, event, false);
    }

    // Another copy of this application (another group's tier copy, a replayed original) may be at
    // the ATS right now; both would search, find nothing and create. Only the lease holder calls.
    const lease = await deps.claims.lease(integration.id, event.applicationId);
    if (!lease.acquired) {
      deps.breakers.abandon(integration.id); // no call made: a half-open probe must not stay taken
      return defer(record, event, 'lease_held', deferral.defaultWaitMs, rounds);
    }
    try {
      const started = performance.now();
      let result;
      try {
        result = await deps.connectors.deliver(event, integration, signal);
      } catch (err) {
        deps.metrics.atsLatency.observe({ platform: integration.platform, outcome: 'failed' }, (performance.now() - started) / 1000);
        if (err instanceof AtsError && err.code === 'rate_limited') {
          // A 429 says the ATS is busy, not broken: the circuit does not count it, and no try is used.
          deps.breakers.onThrottled(integration.id, err.context.clientSide ? undefined : err.retryAfterMs);
          return await defer(record, event, 'rate_limited', err.retryAfterMs ?? deferral.defaultWaitMs, rounds, deps.paceMs?.(integration));
        }
        if (err instanceof AtsError) {
          deps.breakers.onFailure(integration.id, err.retriable, err.retryAfterMs);
          return await forward(record, { code: err.code, message: err.message, status: err.status, retriable: err.retriable, retryAfterMs: err.retryAfterMs }, event, true);
        }
        deps.logger.error({ err, integrationId: integration.id, topic: record.topic, partition: record.partition, offset: record.offset }, 'unexpected error while delivering');
        return await forward(record, { code: 'internal_error', message: (err as Error).message ?? String(err), status: undefined, retriable: false }, event, true);
      }
      deps.metrics.atsLatency.observe({ platform: integration.platform, outcome: 'delivered' }, (performance.now() - started) / 1000);
      deps.breakers.onSuccess(integration.id);
      deps.throttling?.delivered(integration.id);
      // If this write fails the engine runs us again; the connector's search-before-create finds the
      // candidate it just created, so the ATS still sees one application. The same statement gives
      // the lease back (one round trip, and the lease ends when the outcome is durable); if it fails,
      // the release below does that alone.
      await deps.deliveries.recordDeliveryOutcome({
        integrationId: integration.id,
        applicationId: event.applicationId,
        eventId: event.eventId,
        candidateEmail: event.candidate.email,
        status: 'delivered',
        attempted: true,
        externalCandidateId: result.externalCandidateId,
        externalApplicationId: result.externalApplicationId,
        releaseLease: lease.holder,
      });
      lease.releasedElsewhere();
      // Routes recorded on the way here have done their job (a replay now meets the delivery log).
      if (record.headers[HEADER.originalTopic] !== undefined) await deps.claims.forgetRoutes(integration.id, event.applicationId);
      deps.metrics.delivered.inc({ platform: integration.platform });
    } finally {
      await lease.release();
    }
  };
}
