/**
 * What the two consumers of the DLQ topic (dlq-s3-sink/ and alerts/) share besides the runtime:
 * their dependencies (each one injectable by tests), the client and codec built from config, the
 * lag gauge on their metrics, and the start/close shell around their handler. Each one's index.ts
 * names its handler and what it does after start and after close; nothing else.
 */
import type { Config } from '../lib/config.ts';
import { createKafka, type KafkaClient } from '../lib/kafka/index.ts';
import type { Logger } from '../lib/logger.ts';
import { createEventCodec, type EventCodec } from '../lib/serde.ts';
import { createDeadLetterMetrics, type DeadLetterMetrics } from './dead-letter-metrics.ts';
import { ConsumerRuntime, type PartitionWork, type RunningConsumer } from './runtime/runtime.ts';

export interface DeadLetterConsumerDeps<Options> {
  config: Config;
  logger: Logger;
  options?: Partial<Options>;
  metrics?: DeadLetterMetrics;
  kafka?: KafkaClient;
  codec?: EventCodec;
  now?: () => number;
}

export type DeadLetterConsumer = RunningConsumer<DeadLetterMetrics>;

/** The options every DLQ consumer has, and how it retries S3 or SMTP. */
export interface DeadLetterReadOptions {
  /** The consumer group (default `ats-relay.dlq-s3` / `ats-relay.alerts`; tests pass unique ones). */
  groupId: string;
  /** The DLQ topic (default: config.topics.dlq). */
  topic: string;
  /** KAFKA_SESSION_TIMEOUT_MS (default 10 s). */
  sessionTimeoutMs: number;
  /** How long close() lets buffered work finish before leaving it uncommitted (default SHUTDOWN_TIMEOUT_MS − 10 s, at least 1 s). */
  drainTimeoutMs: number;
  /** First wait after a failed write or send; doubles up to `maxBackoffMs`. */
  initialBackoffMs: number;
  maxBackoffMs: number;
}

/** The defaults of DeadLetterReadOptions but the backoff (each consumer picks its own). */
export function deadLetterReadDefaults(config: Config, groupId: string): Omit<DeadLetterReadOptions, 'initialBackoffMs' | 'maxBackoffMs'> {
  return {
    groupId,
    topic: config.topics.dlq,
    sessionTimeoutMs: config.kafka.sessionTimeoutMs,
    drainTimeoutMs: Math.max(1_000, config.http.shutdownTimeoutMs - 10_000),
  };
}

/** What a DLQ consumer's handler is built from. */
export interface DeadLetterContext {
  runtime: ConsumerRuntime;
  logger: Logger;
  metrics: DeadLetterMetrics;
  codec: EventCodec;
  now: () => number;
}

export interface DeadLetterSpec<Work extends PartitionWork> {
  /** Log component and metrics role. */
  component: string;
  role: string;
  opts: DeadLetterReadOptions;
  handler(context: DeadLetterContext): Work;
  /** After the runtime joined (timers, the "consuming" log line). */
  started(work: Work, logger: Logger): void;
  /** After the runtime closed (stop timers, close clients the consumer owns). */
  stopped(work: Work, logger: Logger): void | Promise<void>;
}

export function createDeadLetterConsumer<Options, Work extends PartitionWork>(deps: DeadLetterConsumerDeps<Options>, spec: DeadLetterSpec<Work>): DeadLetterConsumer & { readonly work: Work } {
  const { config } = deps;
  const { opts } = spec;
  const logger = deps.logger.child({ component: spec.component, group: opts.groupId, topic: opts.topic });
  const metrics = deps.metrics ?? createDeadLetterMetrics(spec.role);
  const kafka = deps.kafka ?? createKafka(config.kafka, logger, { clientIdSuffix: opts.groupId });
  const codec = deps.codec ?? createEventCodec({ registryUrl: config.schemaRegistry.url, topic: config.topics.applications });
  const runtime = new ConsumerRuntime({
    kafka,
    groupId: opts.groupId,
    topics: [opts.topic],
    logger,
    sessionTimeoutMs: opts.sessionTimeoutMs,
    maxWaitTimeMs: 500,
    drainTimeoutMs: opts.drainTimeoutMs,
    onLag: (topic, partition, lag) => metrics.lag.set({ topic, partition: String(partition) }, lag),
  });
  const work = spec.handler({ runtime, logger, metrics, codec, now: deps.now ?? Date.now });
  let closing: Promise<void> | undefined;

  return {
    groupId: opts.groupId,
    metrics,
    work,
    failed: runtime.failed,
    get ready() {
      return runtime.ready;
    },
    async start() {
      await runtime.start(work);
      spec.started(work, logger);
    },
    close() {
      closing ??= (async () => {
        await runtime.close();
        await spec.stopped(work, logger);
      })();
      return closing;
    },
  };
}
