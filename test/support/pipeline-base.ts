/**
 * What every pipeline test starts from: the test's own topics created, a connected idempotent
 * producer and a codec with the schema registered; `close` disconnects and deletes the topics (left
 * behind, every run adds hundreds of partitions to the shared broker's heap).
 */
import type { Config } from '../../lib/config.ts';
import { createKafka, createProducer, withAdmin, type KafkaClient, type Producer } from '../../lib/kafka/index.ts';
import { createLogger, type Logger } from '../../lib/logger.ts';
import { createEventCodec, type EventCodec } from '../../lib/serde.ts';
import { ensureTopics, topicSpecs } from '../../lib/topics.ts';

export interface PipelineBase {
  logger: Logger;
  kafka: KafkaClient;
  producer: Producer;
  codec: EventCodec;
  /** Disconnects the producer and deletes the test's topics; call it after the test's consumers stopped. */
  close(): Promise<void>;
}

export async function startPipelineBase(config: Config): Promise<PipelineBase> {
  const logger = createLogger({ level: config.log.level, name: 'test' });
  const kafka = createKafka(config.kafka, logger, { clientIdSuffix: 'test' });
  await withAdmin(kafka, (admin) => ensureTopics(admin, topicSpecs(config.topics)));
  const producer = createProducer(kafka);
  await producer.connect();
  const codec = createEventCodec({ registryUrl: config.schemaRegistry.url, topic: config.topics.applications });
  await codec.register();
  const close = async (): Promise<void> => {
    await producer.disconnect();
    await deleteTestTopics(kafka, config);
  };
  return { logger, kafka, producer, codec, close };
}

/** Deletes a test config's topics (main, retry tiers, DLQ); cleanup, so a failure is ignored. */
export async function deleteTestTopics(kafka: KafkaClient, config: Config): Promise<void> {
  await withAdmin(kafka, (admin) => admin.deleteTopics(topicSpecs(config.topics).map((t) => t.topic))).catch(() => undefined);
}
