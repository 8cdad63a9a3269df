/**
 * The private broker that Kafka-killing tests use: its own ports and data, SIGKILLed and restarted
 * with its data intact, removed at the end — and the shared broker answering throughout.
 */
import { existsSync } from 'node:fs';
import { afterAll, expect, it } from 'vitest';
import { ACKS_ALL, createKafka, createProducer, withAdmin } from '../lib/kafka/index.ts';
import { waitForLeaders } from '../lib/topics.ts';
import { createLogger } from '../lib/logger.ts';
import { startPrivateBroker, type PrivateBroker } from '../dev/stack/private-broker.ts';
import { portInUse } from '../dev/stack/services.ts';
import { testConfig, uniqueName } from './support/config.ts';
import { readTopic } from './support/topic-reader.ts';

let broker: PrivateBroker | undefined;
afterAll(async () => broker?.close(), 60_000);

it('starts a broker of its own, survives its SIGKILL with its data, and leaves the shared one alone', async () => {
  const shared = testConfig();
  broker = await startPrivateBroker(shared, { name: 'selftest' });
  expect(broker.brokers).not.toEqual(shared.kafka.brokers);
  const kafka = createKafka(broker.config.kafka, createLogger({ level: 'warn' }), { clientIdSuffix: 'private-broker-test' });
  const topic = uniqueName('private');
  await withAdmin(kafka, async (a) => {
    await a.createTopics([{ topic, partitions: 1, replicationFactor: 1 }]);
    await waitForLeaders(a, [topic]);
  });
  const producer = createProducer(kafka);
  await producer.connect();
  await producer.send({ topic, acks: ACKS_ALL, messages: [{ key: 'k', value: 'before the kill' }] });
  await producer.disconnect();

  const pid = broker.pid()!;
  await broker.kill();
  expect(existsSync(`/proc/${pid}`)).toBe(false);
  const [host, port] = broker.brokers[0]!.split(':') as [string, string];
  expect(await portInUse(Number(port), host)).toBe(false);
  const sharedPort = Number(shared.kafka.brokers[0]!.split(':')[1]);
  expect(await portInUse(sharedPort)).toBe(true);

  await broker.restart();
  expect(broker.pid()).not.toBe(pid);
  const records = await readTopic(kafka, topic);
  expect(records.map((r) => r.value?.toString())).toEqual(['before the kill']);
}, 240_000);
