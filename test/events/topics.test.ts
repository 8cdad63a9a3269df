/**
 * `ensure` creates the main, retry and DLQ topics from the configuration, is idempotent, and
 * reports drift without touching the data of an existing topic.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { ACKS_ALL, createProducer, KafkaClientError, withAdmin, type Admin } from '../../lib/kafka/index.ts';
import { describeTopics, ensureTopics, existingTopics, topicSpecs, waitForLeaders } from '../../lib/topics.ts';
import { eventsHarness, recordCount } from './support.ts';

describe('topics', () => {
  const h = eventsHarness({ TOPIC_PARTITIONS: '3', TOPIC_RETENTION_MS: '3600000', DLQ_RETENTION_MS: '7200000', RETRY_TIERS: 'retry-30s:30000,retry-2m:120000,retry-5m:300000' });
  afterAll(() => h.close());

  it('derives the five topics, retry tiers and DLQ with at least the main topic\'s partitions', () => {
    const specs = topicSpecs(h.config.topics);
    expect(specs.map((s) => [s.topic, s.role, s.partitions])).toEqual([
      [h.topic, 'main', 3],
      [`${h.topic}.retry-30s`, 'retry', 3],
      [`${h.topic}.retry-2m`, 'retry', 3],
      [`${h.topic}.retry-5m`, 'retry', 3],
      [`${h.topic}.dlq`, 'dlq', 3],
    ]);
    expect(specs.at(-1)!.configs['retention.ms']).toBe('7200000');
    expect(topicSpecs(h.config.topics, { retryPartitions: 6 }).filter((s) => s.role !== 'main').every((s) => s.partitions === 6)).toBe(true);
    expect(topicSpecs(h.config.topics, { retryPartitions: 1 }).every((s) => s.partitions === 3)).toBe(true);
  });

  it('creates them once, then reports ok', async () => {
    const specs = topicSpecs(h.config.topics);
    const first = await withAdmin(h.kafka, (admin) => ensureTopics(admin, specs));
    expect(first.map((r) => r.status)).toEqual(['created', 'created', 'created', 'created', 'created']);
    expect(first.map((r) => r.partitions)).toEqual([3, 3, 3, 3, 3]);
    expect(first[0]!.configs).toMatchObject({ 'retention.ms': '3600000', 'cleanup.policy': 'delete' });
    expect(first[4]!.configs).toMatchObject({ 'retention.ms': '7200000' });

    const second = await withAdmin(h.kafka, (admin) => ensureTopics(admin, specs));
    expect(second.map((r) => r.status)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
    expect(second.every((r) => r.drift.length === 0)).toBe(true);
  });

  it('reports drift (fewer partitions, other retention) and leaves the data alone', async () => {
    // Someone created the main topic by hand, smaller and with another retention, and wrote to it.
    const drifted = eventsHarness({ TOPIC_PARTITIONS: '4' });
    try {
      await withAdmin(drifted.kafka, async (admin) => {
        await admin.createTopics([{ topic: drifted.topic, partitions: 2, replicationFactor: 1, configs: { 'retention.ms': '60000' } }]);
        await waitForLeaders(admin, [drifted.topic]);
      });
      const producer = createProducer(drifted.kafka);
      await producer.connect();
      await producer.send({ topic: drifted.topic, acks: ACKS_ALL, messages: [{ key: 'k', value: randomUUID() }] });
      await producer.disconnect();

      const reports = await withAdmin(drifted.kafka, (admin) => ensureTopics(admin, topicSpecs(drifted.config.topics)));
      const main = reports[0]!;
      expect(main.status).toBe('drift');
      expect(main.partitions).toBe(2);
      expect(main.drift).toEqual(expect.arrayContaining(['partitions: 2 < 4 configured', expect.stringMatching(/^retention\.ms: 60000 ≠ 604800000/)]));
      expect(reports.slice(1).map((r) => r.status)).toEqual(['created', 'created', 'created', 'created']);

      const [described] = await withAdmin(drifted.kafka, (admin) => describeTopics(admin, topicSpecs(drifted.config.topics)));
      expect(described).toMatchObject({ exists: true, partitions: 2 });
      expect(await recordCount(drifted.kafka, drifted.topic)).toBe(1);
    } finally {
      await drifted.close();
    }
  });

  it('does not depend on the rest of the cluster: a listing of all topics failing changes nothing', async () => {
    // A cluster-wide metadata request fails as a whole while any topic, someone else's, has a partition
    // without a leader (seen in CI while another test deleted its topics). The real admin, with only
    // its cluster-wide listing failing the way kafkajs then fails it:
    const other = eventsHarness({ TOPIC_PARTITIONS: '2' });
    try {
      const reports = await withAdmin(other.kafka, (admin) => {
        const failing: Admin = Object.assign(Object.create(admin) as Admin, {
          listTopics: () =>
            Promise.reject(new KafkaClientError('There is no leader for this topic-partition as we are in the middle of a leadership election', { retriable: true, clientError: 'KafkaJSNumberOfRetriesExceeded' })),
        });
        return ensureTopics(failing, topicSpecs(other.config.topics)).then(async (first) => [first, await ensureTopics(failing, topicSpecs(other.config.topics))]);
      });
      expect(reports.map((r) => r.map((t) => t.status))).toEqual([Array(5).fill('created'), Array(5).fill('ok')]);
      const found = await withAdmin(other.kafka, (admin) => existingTopics(admin, [other.topic, `${other.topic}.nowhere`]));
      expect([...found]).toEqual([other.topic]);
    } finally {
      await other.close();
    }
  });
});
