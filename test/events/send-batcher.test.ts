/**
 * lib/send-batcher.ts on the real broker: concurrent sends share produce requests, every caller gets
 * the partition and offset its messages really landed at, call order is record order within a
 * partition, and a failed request fails each caller in it with a retriable error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProducer, KafkaClientError, type OutboundRecord, type Producer } from '../../lib/kafka/index.ts';
import { createSendBatcher } from '../../lib/send-batcher.ts';
import { consume, eventsHarness } from './support.ts';

const h = eventsHarness({ TOPIC_PARTITIONS: '3' });
let producer: Producer;

beforeAll(async () => {
  await h.createTopics();
  producer = createProducer(h.kafka);
  await producer.connect();
});
afterAll(async () => {
  await producer.disconnect();
  await h.close();
});

/** The producer, with a count of the produce requests sent through it. */
function counting(): { producer: Producer; requests: () => number } {
  let requests = 0;
  return {
    producer: { ...producer, sendBatch: (batch) => (requests++, producer.sendBatch(batch)) },
    requests: () => requests,
  };
}

describe('send batcher', () => {
  it('coalesces concurrent sends into few requests and reports where each message landed', async () => {
    const { producer: p, requests } = counting();
    const batcher = createSendBatcher({ producer: async () => p });
    const keys = Array.from({ length: 200 }, (_, i) => `app-${i % 40}`); // 40 keys, 5 messages each
    const sent = await Promise.all(keys.map((key, i) => batcher.send(h.topic, [{ key, value: Buffer.from(`m${i}`) }])));
    expect(requests()).toBeGreaterThan(0);
    expect(requests()).toBeLessThan(20); // one in flight, the rest queued behind it and sent together

    const records = await consume(h.kafka, h.topic, keys.length);
    const at = new Map(records.map((r) => [`${r.partition}/${r.offset}`, r]));
    sent.forEach(([position], i) => {
      const record = at.get(`${position!.partition}/${position!.offset}`);
      expect(record?.value.toString(), `message ${i} at ${position!.partition}/${position!.offset}`).toBe(`m${i}`);
      expect(position!.topic).toBe(h.topic);
    });
    // Call order is record order for a key.
    for (const key of new Set(keys)) {
      const offsets = records.filter((r) => r.key === key).map((r) => Number(r.value.toString().slice(1)));
      expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    }
  });

  it('keeps a caller\'s messages together and splits requests by size', async () => {
    const { producer: p, requests } = counting();
    const batcher = createSendBatcher({ producer: async () => p, maxRequestBytes: 4_096 });
    const value = Buffer.alloc(1_000, 1);
    const calls = Array.from({ length: 12 }, (_, i) => Array.from({ length: 3 }, (): OutboundRecord => ({ key: `big-${i}`, value })));
    const sent = await Promise.all(calls.map((messages) => batcher.send(h.topic, messages)));
    for (const positions of sent) {
      expect(new Set(positions.map((q) => q.partition)).size).toBe(1);
      const offsets = positions.map((q) => Number(q.offset));
      expect(offsets).toEqual([offsets[0]!, offsets[0]! + 1, offsets[0]! + 2]);
    }
    expect(requests()).toBeGreaterThanOrEqual(12); // ~3 KB per caller: one caller per 4 KB request
  });

  it('fails every caller of a failed request with a retriable error and tells onError once', async () => {
    const errors: unknown[] = [];
    const failing: Producer = { ...producer, sendBatch: () => Promise.reject(new KafkaClientError('broker went away', { retriable: true, clientError: 'connection' })) };
    const batcher = createSendBatcher({ producer: async () => failing, onError: (err) => void errors.push(err) });
    const results = await Promise.allSettled([1, 2, 3].map((i) => batcher.send(h.topic, [{ key: `k${i}`, value: Buffer.from('x') }])));
    for (const r of results) expect(r).toMatchObject({ status: 'rejected', reason: { code: 'kafka_unavailable', retriable: true } });
    expect(errors.length).toBeGreaterThanOrEqual(1);
    expect(errors.length).toBeLessThanOrEqual(2); // the first call alone, then the two queued behind it
  });
});
