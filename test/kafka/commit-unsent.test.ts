/**
 * A commit the broker never received must fail. kafkajs answers commitOffsets without sending it
 * while its runner is down between a crash and its own restart (the broker gone); the DLQ archive
 * stores an object and then commits, so a silent "success" there let it write the next object
 * while the broker still held the old offset: after a restart the partition was re-read from
 * further back and records landed in two objects (found by the chaos suite's broker scenario).
 */
import { afterAll, expect, it } from 'vitest';
import { createKafka, createProducer, KafkaClientError, withAdmin, type GroupConsumer } from '../../lib/kafka/index.ts';
import { createLogger } from '../../lib/logger.ts';
import { waitForLeaders } from '../../lib/topics.ts';
import { startPrivateBroker, type PrivateBroker } from '../../dev/stack/private-broker.ts';
import { testConfig, uniqueName } from '../support/config.ts';
import { waitFor } from '../support/wait.ts';

let broker: PrivateBroker | undefined;
let consumer: GroupConsumer | undefined;
afterAll(async () => {
  await consumer?.disconnect().catch(() => undefined);
  await broker?.close();
}, 60_000);

it('the broker SIGKILLed under a group member: its commit fails instead of answering as if done, and the broker keeps the last real commit', async () => {
  broker = await startPrivateBroker(testConfig(), { name: 'commit-unsent' });
  const kafka = createKafka(broker.config.kafka, createLogger({ level: 'silent' }), { clientIdSuffix: 'commit-unsent-test' });
  const topic = uniqueName('commit-unsent');
  await withAdmin(kafka, async (a) => {
    await a.createTopics([{ topic, partitions: 1, replicationFactor: 1 }]);
    await waitForLeaders(a, [topic]);
  });
  const producer = createProducer(kafka);
  await producer.connect();
  await producer.send({ topic, messages: [{ key: 'a', value: '1' }, { key: 'b', value: '2' }] });
  await producer.disconnect();

  const groupId = uniqueName('commit-unsent');
  consumer = kafka.consumer({ groupId, sessionTimeoutMs: 6_000, maxWaitTimeMs: 100 });
  let seen = 0;
  const crashes: boolean[] = [];
  await consumer.run({
    topics: [topic],
    maxRestarts: 1_000, // the client keeps restarting itself: this member never gives up here
    onBatch: async (batch) => {
      for (const r of batch.records) {
        seen++;
        batch.resolveOffset(r.offset);
      }
    },
    onCrash: (_err, fatal) => crashes.push(fatal),
  });
  await waitFor('both records', () => seen >= 2, 60_000);
  await consumer.commit([{ topic, partition: 0, offset: '1' }]);

  // The commit goes out as the broker dies: its attempts fail while the client's fetch loop crashes
  // and stops the runner, which is when kafkajs stops retrying and answers it as done.
  const killed = broker.kill();
  const err = await consumer.commit([{ topic, partition: 0, offset: '2' }]).then(
    () => undefined,
    (e: unknown) => e,
  );
  await killed;
  expect(err, 'the commit answered as done').toBeInstanceOf(KafkaClientError);
  console.log(`commit during the kill: ${(err as KafkaClientError).clientError}: ${(err as Error).message}`);
  await waitFor('the client crashed (and will restart itself)', () => crashes.length > 0, 120_000);

  await broker.restart();
  const committed = await withAdmin(kafka, (a) => a.fetchOffsets(groupId, [topic]));
  expect(committed[0]!.partitions.map((p) => `${p.partition}:${p.offset}`)).toEqual(['0:1']);
}, 300_000);
