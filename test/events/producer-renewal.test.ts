/**
 * The idempotent producer starts a new session (a new producer id) after a failed send, so a batch
 * whose outcome is unknown can never lend its sequence number to the next one (see createProducer
 * in lib/kafka/index.ts; the chaos suite's `broker` scenario lost acknowledged records before).
 */
import { expect, it } from 'vitest';
import { ACKS_ALL, createKafka, createProducer, withAdmin, type KafkaClient } from '../../lib/kafka/index.ts';
import { createLogger } from '../../lib/logger.ts';
import { waitForLeaders } from '../../lib/topics.ts';
import { testConfig, uniqueName } from '../support/config.ts';
import { readTopic } from '../support/topic-reader.ts';

it('after a failed send the next one goes out through a fresh idempotent producer, and nothing acknowledged is missing', async () => {
  const config = testConfig();
  const kafka = createKafka(config.kafka, createLogger({ level: 'fatal' }), { clientIdSuffix: 'renewal-test' });
  let sessions = 0;
  const counting = new Proxy(kafka, {
    get: (target, prop, receiver) => (prop === 'producer' ? (...args: Parameters<KafkaClient['producer']>) => (sessions++, target.producer(...args)) : Reflect.get(target, prop, receiver)),
  });
  const topic = uniqueName('renewal');
  await withAdmin(kafka, async (a) => {
    await a.createTopics([{ topic, partitions: 1, replicationFactor: 1 }]);
    await waitForLeaders(a, [topic]);
  });
  const producer = createProducer(counting, { retry: { retries: 1, initialRetryTime: 100, maxRetryTime: 200 } });
  await producer.connect();
  try {
    await producer.send({ topic, acks: ACKS_ALL, messages: [{ key: 'a', value: 'first' }] });
    expect(sessions).toBe(1);
    // A send that fails (here: a topic that does not exist; auto-creation is off) poisons the session…
    await expect(producer.send({ topic: uniqueName('missing'), acks: ACKS_ALL, messages: [{ key: 'x', value: 'nowhere' }] })).rejects.toThrow();
    expect(sessions).toBe(1);
    // …and the next send opens a new one before it goes out.
    await producer.send({ topic, acks: ACKS_ALL, messages: [{ key: 'b', value: 'second' }] });
    expect(sessions).toBe(2);
    await producer.send({ topic, acks: ACKS_ALL, messages: [{ key: 'c', value: 'third' }] });
    expect(sessions).toBe(2);
    expect((await readTopic(kafka, topic)).map((r) => r.value?.toString())).toEqual(['first', 'second', 'third']);
  } finally {
    await producer.disconnect();
    await withAdmin(kafka, (a) => a.deleteTopics([topic])).catch(() => undefined);
  }
}, 60_000);
