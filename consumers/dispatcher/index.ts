/**
 * Wires a delivery consumer: the dispatcher (group `ats-relay.dispatcher`, reads the main topic)
 * or one retry tier (group `ats-relay.<tier>`, reads that tier's topic and holds each partition
 * until its head record is due). Both run the same handler; start() joins the group, close()
 * shuts down gracefully.
 */
import type { Config } from '../../lib/config.ts';
import { Keyring } from '../../registry/keyring.ts';
import { createPool } from '../../lib/db.ts';
import { createIntegrationCache } from '../../registry/cache.ts';
import { createIntegrationRepository } from '../../registry/repository.ts';
import { createKafka, createProducer, type KafkaClient } from '../../lib/kafka/index.ts';
import { createSendBatcher } from '../../lib/send-batcher.ts';
import type { Logger } from '../../lib/logger.ts';
import { createEventCodec } from '../../lib/serde.ts';
import { createConnectors } from '../../connectors/index.ts';
import { DEFAULT_RATE_LIMITS } from '../../connectors/rate-limit.ts';
import { CircuitBreakers } from './circuit-breaker.ts';
import type { RunningConsumer } from '../runtime/runtime.ts';
import { StreamConsumer, type HandleResult, type InboundRecord } from './stream-consumer.ts';
import { createConsumerMetrics, type ConsumerMetrics } from './metrics.ts';
import { createRetryRouter } from './retry-router.ts';
import { createDeliveryClaims } from './delivery-claims.ts';
import { createDeliveryLog } from './delivery-log.ts';
import { createDeliveryStore } from './delivery-store.ts';
import { createDeliveryHandler } from './handler.ts';
import { deliveryOptions, type DeliveryOptions, type DeliveryRole } from './options.ts';
import { createThrottleLog } from './throttle-log.ts';

export { GROUP_PREFIX, groupIdFor, tierByName, type DeliveryRole } from './options.ts';

export interface DeliveryConsumerOptions {
  config: Config;
  logger: Logger;
  role: DeliveryRole;
  /** Overrides of the defaults in options.ts (tests pass unique groups and short drains). */
  options?: Partial<DeliveryOptions>;
  metrics?: ConsumerMetrics;
}

export type DeliveryConsumer = RunningConsumer<ConsumerMetrics>;

export interface DeliveryServices {
  kafka: KafkaClient;
  metrics: ConsumerMetrics;
  handle: (record: InboundRecord, signal: AbortSignal) => Promise<HandleResult>;
  /** Check credentials, subscribe to registry changes, connect the producer, register the schema. */
  start(): Promise<void>;
  close(): Promise<void>;
}

/** Everything the delivery handler needs (pool, cache, connectors, producer, codec), built from config. */
export function createDeliveryServices(opts: { config: Config; logger: Logger; groupId: string; metrics: ConsumerMetrics }): DeliveryServices {
  const { config, logger, groupId, metrics } = opts;
  const keyring = new Keyring(config.crypto.encryptionKeys);
  const pool = createPool(config.database, { max: Math.min(20, Math.max(4, Math.ceil(config.dispatcher.maxInFlight / 8))), applicationName: `ats-relay ${groupId}` });
  const repository = createIntegrationRepository({ pool, keyring });
  const cache = createIntegrationCache({ repository, listen: pool });
  const kafka = createKafka(config.kafka, logger, { clientIdSuffix: groupId });
  const producer = createProducer(kafka);
  // Decode only: the writer's schema is fetched by id, so the dispatcher never registers (and never races other starters).
  const codec = createEventCodec({ registryUrl: config.schemaRegistry.url, topic: config.topics.applications });
  const connectors = createConnectors({
    requestTimeoutMs: config.ats.requestTimeoutMs,
    allowPrivateNetworks: config.ats.allowPrivateNetworks,
    resumeMaxBytes: config.ats.resumeMaxBytes,
    resumeBytesInFlight: config.ats.resumeBytesInFlight,
    rateLimits: config.ats.rateLimits,
    // A delivery waits for a rate-limit slot while it holds an in-flight slot, so only briefly:
    // longer waits come back as rate_limited and the handler defers the record without a slot.
    rateLimitMaxWaitMs: Math.min(1_000, config.ats.requestTimeoutMs),
    // A delivery holds one request at a time, so this many sockets per ATS host never queue one
    // behind another (undici opens them lazily; the per-integration limiter bounds the rate).
    connectionsPerOrigin: config.dispatcher.maxInFlight,
  });
  const claims = createDeliveryClaims(pool);
  const throttling = createThrottleLog({ pool, logger });
  const rateBudgets = { ...DEFAULT_RATE_LIMITS, ...config.ats.rateLimits };
  // Hourly: routes past the topics' retention can no longer meet a replay; expired leases had dead holders.
  let pruneTimer: NodeJS.Timeout | undefined;
  const prune = (): void => {
    claims.prune(config.topics.retentionMs).catch((err: unknown) => logger.warn({ err }, 'pruning delivery routes and leases failed; next hour again'));
  };
  const handle = createDeliveryHandler({
    group: groupId,
    dlqTopic: config.topics.dlq,
    codec,
    integrations: cache,
    deliveries: createDeliveryLog(createDeliveryStore(pool)),
    connectors,
    sender: createSendBatcher({ producer: async () => producer }),
    route: createRetryRouter({ tiers: config.topics.retryTiers, jitter: config.retry.jitter }),
    breakers: new CircuitBreakers({ failureThreshold: config.dispatcher.circuitFailureThreshold, openMs: config.dispatcher.circuitOpenMs }),
    claims,
    tiers: config.topics.retryTiers,
    throttling,
    paceMs: (integration) => {
      const bucket = rateBudgets[integration.platform];
      // A delivery takes two or three requests (search, create, attachment).
      return bucket ? Math.ceil((3 / bucket.refillPerSecond) * 1000) : undefined;
    },
    metrics,
    logger,
  });
  return {
    kafka,
    metrics,
    handle,
    async start() {
      await repository.assertCredentialsReadable();
      await cache.start();
      await producer.connect();
      throttling.start();
      prune();
      pruneTimer = setInterval(prune, 3_600_000);
      pruneTimer.unref();
    },
    async close() {
      clearInterval(pruneTimer);
      await connectors.close();
      await producer.disconnect();
      await throttling.close();
      await cache.close();
      await pool.end();
    },
  };
}

export function createDeliveryConsumer(opts: DeliveryConsumerOptions): DeliveryConsumer {
  const { config, role } = opts;
  const o = deliveryOptions(config, role, opts.options);
  const { groupId, topic, dueAt } = o;
  const logger = opts.logger.child({ component: role.role === 'dispatcher' ? 'dispatcher' : `retry:${role.tier}`, group: groupId });
  const metrics = opts.metrics ?? createConsumerMetrics(role.role === 'dispatcher' ? 'dispatcher' : role.tier);
  const services = createDeliveryServices({ config, logger, groupId, metrics });
  const stream = new StreamConsumer({
    kafka: services.kafka,
    groupId,
    topics: [topic],
    logger,
    maxInFlight: o.maxInFlight,
    sessionTimeoutMs: o.sessionTimeoutMs,
    drainTimeoutMs: o.drainTimeoutMs,
    handle: services.handle,
    ...(dueAt ? { dueAt: (record: InboundRecord) => dueAt(record.headers) } : {}),
    hooks: {
      inFlight: (delta) => metrics.inFlight.inc(delta),
      lag: (t, p, lag) => metrics.lag.set({ topic: t, partition: String(p) }, lag),
      handlerRetry: () => metrics.handlerRetries.inc(),
      fetched: (count) => metrics.fetched.inc(count),
    },
  });

  let closing: Promise<void> | undefined;
  return {
    groupId,
    metrics,
    failed: stream.failed,
    get ready() {
      return stream.ready;
    },
    async start() {
      await services.start();
      await stream.start();
      logger.info({ topic, maxInFlight: o.maxInFlight }, 'consuming');
    },
    close() {
      // Order matters: stop fetching and drain first (handlers still need the producer and the pool).
      closing ??= (async () => {
        await stream.close();
        await services.close();
        logger.info('stopped');
      })();
      return closing;
    },
  };
}
