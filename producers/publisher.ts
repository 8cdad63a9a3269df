/**
 * Direct publishing for backend services: validate → enrich from the registry → encode (Avro via the
 * Schema Registry) → produce with key = application id, idempotent, acks=all.
 *
 * The registry lookup is cached (producers/target-cache.ts, invalidated by the registry's change
 * notifications like the consumers' cache) and concurrent publishes share produce requests
 * (lib/send-batcher.ts): a publish costs about what the producer costs (issue 17).
 *
 * Outcomes are data: `published` (with topic/partition/offset per event), `no-integration` and
 * `no-job-mapping` (nothing sent). Failures throw RelayError: `invalid_input` (never retriable),
 * `registry_unavailable` / `kafka_unavailable` (retriable, after bounded retries) — never a silent
 * drop. A caller that cannot afford to lose an event on a crash uses the outbox instead
 * (producers/outbox/enqueue.ts).
 */
import type { ApplicationSubmitted } from '../lib/application.ts';
import type { Config } from '../lib/config.ts';
import type { Pool } from '../lib/db.ts';
import { createKafka, createProducer, kafkaError, type KafkaClient, type OutboundRecord, type Producer, type RetryPolicy } from '../lib/kafka/index.ts';
import { createSendBatcher } from '../lib/send-batcher.ts';
import type { Logger } from '../lib/logger.ts';
import { createEventCodec, type EventCodec, type RegistryRetry } from '../lib/serde.ts';
import type { Platform } from '../registry/integration.ts';
import { assertValidApplication, type ApplicationInput } from './application-input.ts';
import { enrichApplication } from './enrichment.ts';
import { createTargetCache } from './target-cache.ts';

export interface PublisherOptions {
  kafka: Config['kafka'];
  registryUrl: string;
  /** The main applications topic (config.topics.applications). */
  topic: string;
  /**
   * Reads the integration registry (enabled integrations, job mappings), cached; one of its
   * connections LISTENs for registry changes (a pool of max 1 gets no cache: a query per publish).
   */
  pool: Pool;
  /** How long a company's delivery targets are trusted without a change notification (default 30 s). */
  targetCacheTtlMs?: number;
  logger: Logger;
  /** Bounded send retries (default lib/kafka/index.ts DEFAULT_SEND_RETRY, ≈25 s). */
  sendRetry?: RetryPolicy;
  /** Connection retries (connect, metadata); default: the client's (≈10 s). */
  connectRetry?: RetryPolicy;
  registryRetry?: Partial<RegistryRetry>;
}

export interface PublishedEvent {
  eventId: string;
  integrationId: string;
  platform: Platform;
  topic: string;
  partition: number;
  offset: string;
}

export type PublishResult =
  | { status: 'published'; events: PublishedEvent[]; /** Enabled integrations without a mapping for the job. */ unmapped: string[] }
  | { status: 'no-integration'; companyId: string }
  | { status: 'no-job-mapping'; companyId: string; jobId: string; integrationIds: string[] };

export interface ApplicationPublisher {
  /** Connect and register the schema now instead of on the first publish. */
  start(): Promise<void>;
  publishApplication(input: ApplicationInput): Promise<PublishResult>;
  /** Idempotent; waits for sends in flight. */
  close(): Promise<void>;
}

/** Header carrying the event id, so consumers can drop duplicates before decoding. */
export const EVENT_ID_HEADER = 'ats-event-id';

/** One Kafka message per event: key = application id (per-application order), the event id as a header. */
export function toMessage(event: ApplicationSubmitted, value: Buffer): OutboundRecord {
  return { key: event.applicationId, value, headers: { [EVENT_ID_HEADER]: event.eventId } };
}

export function createApplicationPublisher(opts: PublisherOptions): ApplicationPublisher {
  const logger = opts.logger.child({ component: 'publisher', topic: opts.topic });
  const kafka: KafkaClient = createKafka(opts.kafka, logger, { clientIdSuffix: 'publisher', ...(opts.connectRetry ? { retry: opts.connectRetry } : {}) });
  const codec: EventCodec = createEventCodec({ registryUrl: opts.registryUrl, topic: opts.topic, ...(opts.registryRetry ? { retry: opts.registryRetry } : {}) });
  let producer: Producer | undefined;
  let connecting: Promise<Producer> | undefined;
  let closing: Promise<void> | undefined;
  const targets = createTargetCache({ pool: opts.pool, logger, ...(opts.targetCacheTtlMs !== undefined ? { ttlMs: opts.targetCacheTtlMs } : {}) });
  let listening: Promise<void> | undefined;
  /** After a failed subscription, publishes do not try again before this time (one attempt per 5 s). */
  let listenRetryAt = 0;

  /** Subscribes the target cache once; lookups go to the database until it listens (or if it cannot). */
  function listen(): Promise<void> {
    // The subscription holds one connection for good: a pool of one would leave none for the lookups.
    if ((opts.pool.options.max ?? 10) < 2) return Promise.resolve();
    if (!listening && Date.now() >= listenRetryAt) {
      listening = targets.start().catch((err: unknown) => {
        logger.warn({ err }, 'delivery target cache cannot listen for registry changes; looking targets up per publish meanwhile');
        listenRetryAt = Date.now() + 5_000;
        listening = undefined;
      });
    }
    return listening ?? Promise.resolve();
  }

  /** A connected producer; after a failed send it is replaced, so a fresh producer id restarts the sequence numbers. */
  function connected(): Promise<Producer> {
    connecting ??= (async () => {
      const p = createProducer(kafka, opts.sendRetry ? { retry: opts.sendRetry } : {});
      try {
        await p.connect();
      } catch (err) {
        connecting = undefined;
        await p.disconnect().catch(() => undefined);
        throw kafkaError(err, 'cannot connect to KafkaClient', { topic: opts.topic });
      }
      producer = p;
      return p;
    })();
    return connecting;
  }

  /** Drop `failed` (if it is still the current producer), so the next send connects a fresh one. */
  async function reset(failed: Producer | undefined = producer): Promise<void> {
    if (!failed || failed !== producer) return;
    producer = undefined;
    connecting = undefined;
    await failed.disconnect().catch(() => undefined);
  }

  // Concurrent publishes share produce requests; a failed request replaces the producer once.
  const sender = createSendBatcher({
    producer: connected,
    onError: async (err, failed) => {
      if ((err as { retriable?: boolean }).retriable) await reset(failed);
    },
  });

  /** Publishes under way; close() waits for them to settle. */
  let active = 0;
  let drained: (() => void) | undefined;

  async function publish(input: ApplicationInput): Promise<PublishResult> {
    active++;
    try {
      const app = assertValidApplication(input);
      void listen();
      const enrichment = await enrichApplication(opts.pool, app, targets.targets);
      if (enrichment.status === 'no-integration') return { status: 'no-integration', companyId: app.companyId };
      if (enrichment.status === 'no-job-mapping') {
        return { status: 'no-job-mapping', companyId: app.companyId, jobId: app.jobId, integrationIds: enrichment.integrationIds };
      }
      const { events, unmapped } = enrichment;
      const messages: OutboundRecord[] = [];
      for (const e of events) messages.push(toMessage(e, codec.encodeIfRegistered(e) ?? (await codec.encode(e))));
      const positions = await sender.send(opts.topic, messages);
      const published = events.map((e, i): PublishedEvent => ({ eventId: e.eventId, integrationId: e.integrationId, platform: e.platform, ...positions[i]! }));
      if (logger.isLevelEnabled('debug')) logger.debug({ applicationId: app.applicationId, events: published.length, partition: published[0]?.partition }, 'application published');
      return { status: 'published', events: published, unmapped };
    } finally {
      if (--active === 0) drained?.();
    }
  }

  return {
    async start() {
      await Promise.all([codec.register(), listen()]);
      await connected();
    },

    publishApplication(input) {
      if (closing) return Promise.reject(new Error('publisher is closed'));
      return publish(input);
    },

    close() {
      closing ??= (async () => {
        if (active > 0) await new Promise<void>((resolve) => (drained = resolve));
        await listening;
        await targets.close();
        await reset();
      })();
      return closing;
    },
  };
}
