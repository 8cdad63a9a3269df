/**
 * The DLQ → S3 sink (group `ats-relay.dlq-s3`), run by `consume --role dlq-s3`: archives every
 * dead letter into gzipped JSON-lines objects (lib/dlq-archive.ts), one partition and contiguous
 * offset range per object, and commits a partition's offsets only once the object holding them is
 * stored.
 *
 * This file wires it: the consumer runtime (consumers/runtime/) owns the group membership, pauses,
 * lag gauge and ordered close; handler.ts decides what goes into which object and when it is
 * written; options.ts holds the settings and their defaults. close(): stop fetching, write what is
 * buffered (bounded by drainTimeoutMs), commit, leave.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { Config } from '../../lib/config.ts';
import { createKafka, type KafkaClient } from '../../lib/kafka/index.ts';
import type { Logger } from '../../lib/logger.ts';
import { createS3Client } from '../../lib/s3.ts';
import { createEventCodec, type EventCodec } from '../../lib/serde.ts';
import { createDeadLetterMetrics, type DeadLetterMetrics } from '../dead-letter-metrics.ts';
import { ConsumerRuntime } from '../runtime/runtime.ts';
import { createSinkHandler } from './handler.ts';
import { sinkOptions, type SinkOptions } from './options.ts';

export { DEFAULT_GROUP_ID } from './options.ts';

export interface DlqS3SinkDeps {
  config: Config;
  logger: Logger;
  options?: Partial<SinkOptions>;
  metrics?: DeadLetterMetrics;
  /** Default: built from config.s3 (lib/s3.ts). */
  s3?: S3Client;
  kafka?: KafkaClient;
  codec?: EventCodec;
  now?: () => number;
}

export interface DlqS3Sink {
  readonly groupId: string;
  readonly metrics: DeadLetterMetrics;
  readonly ready: boolean;
  /** Rejects once the Kafka client gave up for good: close and exit non-zero (a supervisor restarts the process). */
  readonly failed: Promise<never>;
  start(): Promise<void>;
  close(): Promise<void>;
}


export function createDlqS3Sink(deps: DlqS3SinkDeps): DlqS3Sink {
  const { config } = deps;
  const opts = sinkOptions(config, deps.options);
  const now = deps.now ?? Date.now;
  const logger = deps.logger.child({ component: 'dlq-s3-sink', group: opts.groupId, topic: opts.topic });
  const metrics = deps.metrics ?? createDeadLetterMetrics('dlq-s3');
  const s3 = deps.s3 ?? createS3Client(config.s3);
  const ownsS3 = deps.s3 === undefined;
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
  const handler = createSinkHandler({ opts, s3, codec, metrics, logger, runtime, now });
  let closing: Promise<void> | undefined;

  return {
    groupId: opts.groupId,
    metrics,
    failed: runtime.failed,
    get ready() {
      return runtime.ready;
    },

    async start() {
      await runtime.start(handler);
      handler.startTimer();
      logger.info({ bucket: opts.bucket, prefix: opts.prefix, maxRecords: opts.maxRecords, maxBytes: opts.maxBytes, maxAgeMs: opts.maxAgeMs }, 'archiving the DLQ');
    },

    close() {
      closing ??= (async () => {
        await runtime.close();
        handler.stop();
        if (ownsS3) s3.destroy();
        logger.info('stopped');
      })();
      return closing;
    },
  };
}
