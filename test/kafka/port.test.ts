/**
 * The Kafka port's conformance suite, on the real broker, once per adapter in KAFKA_ADAPTERS: what
 * any client library behind lib/kafka/ must do for ats-relay to keep its guarantees. A second
 * adapter is a drop-in when it passes this file unchanged.
 */
import { afterAll, describe, expect, it } from 'vitest';
import {
  KAFKA_ADAPTERS,
  KafkaClientError,
  kafkaError,
  partitionForKey,
  scanTopic,
  type ConsumedRecord,
  type GroupConsumer,
  type GroupRunOptions,
  type KafkaClient,
  type TopicPartition,
} from '../../lib/kafka/index.ts';
import { createLogger } from '../../lib/logger.ts';
import { existingTopics, waitForLeaders } from '../../lib/topics.ts';
import { testConfig, uniqueName } from '../support/config.ts';
import { waitFor } from '../support/wait.ts';

const config = testConfig();
const logger = createLogger({ level: 'silent' });


const keyOf = (tp: TopicPartition): string => `${tp.topic}/${tp.partition}`;

describe.each(Object.entries(KAFKA_ADAPTERS))('the Kafka port on %s', (_name, createClient) => {
  const kafka: KafkaClient = createClient({ brokers: config.kafka.brokers, clientId: uniqueName('port-test') }, logger);
  const topics: string[] = [];
  const consumers: GroupConsumer[] = [];

  afterAll(async () => {
    for (const c of consumers) await c.disconnect().catch(() => undefined);
    const admin = kafka.admin();
    await admin.connect();
    const existing = await existingTopics(admin, topics);
    await admin.deleteTopics(topics.filter((t) => existing.has(t))).catch(() => undefined);
    await admin.disconnect();
  });

  async function topic(partitions: number): Promise<string> {
    const name = uniqueName('port-test');
    topics.push(name);
    const admin = kafka.admin();
    await admin.connect();
    try {
      await admin.createTopics([{ topic: name, partitions, replicationFactor: 1 }]);
      await waitForLeaders(admin, [name]);
    } finally {
      await admin.disconnect();
    }
    return name;
  }

  async function produce(name: string, records: Array<{ key: string; partition?: number }>): Promise<void> {
    const producer = kafka.producer();
    await producer.connect();
    try {
      await producer.send({ topic: name, messages: records.map((r) => ({ key: r.key, value: `value of ${r.key}`, ...(r.partition === undefined ? {} : { partition: r.partition }) })) });
    } finally {
      await producer.disconnect();
    }
  }

  /** A member that resolves every record it sees and records assignment changes. */
  function member(groupId: string, name: string, extra: Pick<GroupRunOptions, 'maxRestarts' | 'onCrash'> = {}) {
    const consumer = kafka.consumer({ groupId, sessionTimeoutMs: 6_000, maxWaitTimeMs: 100 });
    consumers.push(consumer);
    const seen: Array<ConsumedRecord & { partition: number }> = [];
    const owned = new Set<string>();
    const events: string[] = [];
    const running = consumer.run({
      ...extra,
      topics: [name],
      onAssigned: (tps) => {
        for (const tp of tps) owned.add(keyOf(tp));
        events.push(`+${tps.map(keyOf).sort().join(',')}`);
      },
      onRevoked: (tps) => {
        for (const tp of tps) owned.delete(keyOf(tp));
        events.push(`-${tps.map(keyOf).sort().join(',')}`);
      },
      onBatch: async (batch) => {
        for (const r of batch.records) {
          if (batch.isStale()) return;
          seen.push({ ...r, partition: batch.partition });
          batch.resolveOffset(r.offset);
        }
      },
    });
    return { consumer, seen, owned, events, running };
  }

  it('creates, describes, lists and deletes topics', async () => {
    const name = uniqueName('port-test');
    const admin = kafka.admin();
    await admin.connect();
    try {
      await admin.createTopics([{ topic: name, partitions: 3, replicationFactor: 1, configs: { 'retention.ms': '3600000' } }]);
      await waitForLeaders(admin, [name]);
      expect(await admin.listTopics()).toContain(name);
      const [meta] = await admin.topicMetadata([name]);
      expect(meta!.topic).toBe(name);
      expect(meta!.partitions.map((p) => p.partition).sort()).toEqual([0, 1, 2]);
      expect(meta!.partitions.every((p) => p.leader >= 0 && p.replicas.length === 1)).toBe(true);
      expect((await admin.topicConfigs([name], ['retention.ms']))[name]).toEqual({ 'retention.ms': '3600000' });
      expect(await admin.brokerCount()).toBeGreaterThan(0);
      // Creating it again leaves it as it is.
      await admin.createTopics([{ topic: name, partitions: 5, replicationFactor: 1 }]);
      expect((await admin.topicMetadata([name]))[0]!.partitions).toHaveLength(3);
      // A broker refusal carries the broker's own error name, not a client-specific one.
      const refused = await admin.topicMetadata([uniqueName('port-missing')]).then(() => undefined, (err: unknown) => err);
      expect(refused).toBeInstanceOf(KafkaClientError);
      expect((refused as KafkaClientError).brokerError).toBe('UNKNOWN_TOPIC_OR_PARTITION');
      await admin.deleteTopics([name]);
      await waitFor('the topic to be gone', async () => !(await existingTopics(admin, [name])).has(name));
    } finally {
      await admin.disconnect();
    }
  });

  it("a topic deleted while another client polls its metadata: each answer is the topic or the broker's UNKNOWN_TOPIC_OR_PARTITION", async () => {
    // kafkajs asks the broker twice per metadata call; a deletion landing between the two used to
    // surface as "Cannot read properties of null" (CI, stop 30; here about one deletion in two).
    const admin = kafka.admin();
    const watcher = kafka.admin();
    await admin.connect();
    await watcher.connect();
    const outcomes = new Map<string, number>();
    try {
      for (let i = 0; i < 12; i++) {
        const name = uniqueName('port-deleted');
        await admin.createTopics([{ topic: name, partitions: 1, replicationFactor: 1 }]);
        await waitForLeaders(admin, [name]);
        let deleted = false;
        const deleting = admin.deleteTopics([name]).finally(() => (deleted = true));
        for (;;) {
          const outcome = await watcher.topicMetadata([name]).then(
            ([meta]) => (meta?.topic === name ? 'topic' : 'other answer'),
            (err: unknown) => (err instanceof KafkaClientError && err.brokerError ? err.brokerError : String(err)),
          );
          outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
          if (outcome !== 'topic' && (deleted || outcome !== 'UNKNOWN_TOPIC_OR_PARTITION')) break;
        }
        await deleting;
      }
    } finally {
      await watcher.disconnect();
      await admin.disconnect();
    }
    expect([...outcomes.keys()].sort()).toEqual(['UNKNOWN_TOPIC_OR_PARTITION', 'topic']);
  });

  it('send answers where each record landed: partition and offset, in request order', async () => {
    const name = await topic(3);
    const other = await topic(1);
    const producer = kafka.producer();
    await producer.connect();
    try {
      const keys = Array.from({ length: 12 }, (_, i) => `key-${i % 5}`);
      const positions = await producer.send({ topic: name, messages: keys.map((key, i) => ({ key, value: `v${i}` })) });
      expect(positions).toHaveLength(12);
      // Same key, same partition; offsets per partition consecutive from 0 in request order.
      const byKey = new Map<string, number>();
      positions.forEach((p, i) => {
        expect(p.topic).toBe(name);
        const earlier = byKey.get(keys[i]!);
        if (earlier !== undefined) expect(p.partition).toBe(earlier);
        byKey.set(keys[i]!, p.partition);
        // The Java client's choice for the key, so every producer to the topic agrees.
        expect(p.partition).toBe(partitionForKey(keys[i]!, 3));
      });
      for (const partition of [0, 1, 2]) {
        const offsets = positions.filter((p) => p.partition === partition).map((p) => Number(p.offset));
        expect(offsets).toEqual(offsets.map((_, i) => i));
      }
      // Several topics in one request, explicit partitions kept.
      const batch = await producer.sendBatch({
        topicMessages: [
          { topic: other, messages: [{ key: 'a', value: '1' }, { key: 'b', value: '2' }] },
          { topic: name, messages: [{ key: 'x', value: '3', partition: 2 }] },
        ],
      });
      expect(batch.map((p) => `${p.topic === other ? 'other' : 'main'}:${p.partition}:${p.offset}`)).toEqual(['other:0:0', 'other:0:1', `main:2:${positions.filter((p) => p.partition === 2).length}`]);

      // Reading back: every record is where send said.
      const admin = kafka.admin();
      await admin.connect();
      const marks = await admin.fetchTopicOffsets(name);
      await admin.disconnect();
      expect(marks.reduce((n, m) => n + Number(m.high) - Number(m.low), 0)).toBe(13);
      const read = new Map<string, string>();
      const result = await scanTopic(kafka, name, {
        groupId: uniqueName('port-scan'),
        timeoutMs: 20_000,
        each: (r, partition) => {
          read.set(`${partition}:${r.offset}`, String(r.value));
          return read.size === 13;
        },
      });
      expect(result).toBe('done');
      positions.forEach((p, i) => expect(read.get(`${p.partition}:${p.offset}`)).toBe(`v${i}`));
    } finally {
      await producer.disconnect();
    }
  });

  it('a group member hears its assignment, reads, commits, and a restart resumes from the commit', async () => {
    const name = await topic(2);
    await produce(name, [0, 1, 2, 3].flatMap((i) => [{ key: `p0-${i}`, partition: 0 }, { key: `p1-${i}`, partition: 1 }]));
    const groupId = uniqueName('port-group');
    const first = member(groupId, name);
    await first.running;
    await waitFor('all 8 records', () => first.seen.length >= 8);
    expect([...first.owned].sort()).toEqual([`${name}/0`, `${name}/1`]);
    expect(first.events[0]).toBe(`+${name}/0,${name}/1`);
    expect(first.seen.map((r) => String(r.key)).sort()).toEqual(['p0-0', 'p0-1', 'p0-2', 'p0-3', 'p1-0', 'p1-1', 'p1-2', 'p1-3']);
    // Commit partition 0 up to offset 2 (records 0 and 1 done), partition 1 fully.
    await first.consumer.commit([
      { topic: name, partition: 0, offset: '2' },
      { topic: name, partition: 1, offset: '4' },
    ]);
    await first.consumer.disconnect();

    const admin = kafka.admin();
    await admin.connect();
    const committed = await admin.fetchOffsets(groupId, [name]);
    expect(committed[0]!.partitions.map((p) => `${p.partition}:${p.offset}`).sort()).toEqual(['0:2', '1:4']);
    await admin.disconnect();

    const second = member(groupId, name);
    await second.running;
    await waitFor('the uncommitted records again', () => second.seen.length >= 2);
    await new Promise((r) => setTimeout(r, 500)); // nothing else may follow
    expect(second.seen.map((r) => `${r.partition}:${r.offset}:${String(r.key)}`).sort()).toEqual(['0:2:p0-2', '0:3:p0-3']);
  });

  it('pauses and resumes one partition while the others keep flowing', async () => {
    const name = await topic(2);
    const groupId = uniqueName('port-pause');
    const m = member(groupId, name);
    await m.running;
    await waitFor('the assignment', () => m.owned.size === 2);
    m.consumer.pause([{ topic: name, partitions: [0] }]);
    await produce(name, [{ key: 'a', partition: 0 }, { key: 'b', partition: 1 }]);
    await waitFor('the record of the running partition', () => m.seen.some((r) => r.partition === 1));
    await new Promise((r) => setTimeout(r, 1_000));
    expect(m.seen.filter((r) => r.partition === 0)).toEqual([]);
    m.consumer.resume([{ topic: name, partitions: [0] }]);
    await waitFor('the record of the resumed partition', () => m.seen.some((r) => r.partition === 0));
    // A record left unresolved is fetched again (the due-time gate relies on it).
    expect(m.seen.map((r) => String(r.key)).sort()).toEqual(['a', 'b']);
  });

  it('leaves a record it did not resolve to be fetched again', async () => {
    const name = await topic(1);
    await produce(name, [{ key: 'gate' }]);
    const consumer = kafka.consumer({ groupId: uniqueName('port-refetch'), maxWaitTimeMs: 100 });
    consumers.push(consumer);
    let fetches = 0;
    await consumer.run({
      topics: [name],
      onBatch: async (batch) => {
        if (batch.records.length === 0) return;
        fetches++;
        if (fetches >= 3) batch.resolveOffset(batch.records[0]!.offset);
      },
    });
    await waitFor('the record three times', () => fetches >= 3);
    const settled = fetches;
    await new Promise((r) => setTimeout(r, 700));
    expect(fetches).toBe(settled);
  });

  it('hands partitions over when a second member joins, and back when it leaves', async () => {
    const name = await topic(4);
    const groupId = uniqueName('port-rebalance');
    const a = member(groupId, name);
    await a.running;
    await waitFor('A owning every partition', () => a.owned.size === 4, 30_000);
    const b = member(groupId, name);
    await b.running;
    await waitFor('B owning some partitions and A giving them up', () => b.owned.size > 0 && a.owned.size + b.owned.size === 4, 60_000);
    expect([...a.owned].filter((k) => b.owned.has(k))).toEqual([]);
    expect(a.events.some((e) => e.startsWith('-'))).toBe(true);
    await produce(name, [0, 1, 2, 3].map((partition) => ({ key: `k${partition}`, partition })));
    await waitFor('each record read by its owner', () => a.seen.length + b.seen.length >= 4);
    for (const r of a.seen) expect(a.owned.has(`${name}/${r.partition}`)).toBe(true);
    for (const r of b.seen) expect(b.owned.has(`${name}/${r.partition}`)).toBe(true);
    await b.consumer.disconnect();
    await waitFor('A owning every partition again', () => a.owned.size === 4, 60_000);
  }, 150_000);

  it('admin reads, sets, resets, lists, describes and deletes group offsets', async () => {
    const name = await topic(2);
    await produce(name, [{ key: 'a', partition: 0 }, { key: 'b', partition: 0 }, { key: 'c', partition: 1 }]);
    const groupId = uniqueName('port-admin');
    const admin = kafka.admin();
    await admin.connect();
    try {
      expect((await admin.fetchTopicOffsets(name)).map((w) => `${w.partition}:${w.low}-${w.high}`).sort()).toEqual(['0:0-2', '1:0-1']);
      const byTime = await admin.fetchTopicOffsetsByTimestamp(name, Date.now() - 60_000);
      expect(byTime.map((o) => `${o.partition}:${o.offset}`).sort()).toEqual(['0:0', '1:0']);
      await admin.setOffsets(groupId, name, [{ partition: 0, offset: '1' }, { partition: 1, offset: '1' }]);
      expect((await admin.fetchOffsets(groupId, [name]))[0]!.partitions.map((p) => `${p.partition}:${p.offset}`).sort()).toEqual(['0:1', '1:1']);
      expect((await admin.listGroups()).map((g) => g.groupId)).toContain(groupId);
      const [described] = await admin.describeGroups([groupId]);
      expect(described).toMatchObject({ groupId, members: [] });
      await admin.resetOffsetsToEarliest(groupId, name);
      expect((await admin.fetchOffsets(groupId, [name]))[0]!.partitions.map((p) => `${p.partition}:${p.offset}`).sort()).toEqual(['0:0', '1:0']);
      await admin.deleteGroups([groupId]);
      expect((await admin.listGroups()).map((g) => g.groupId)).not.toContain(groupId);
    } finally {
      await admin.disconnect();
    }
  });

  it('a member handed partitions of a topic it does not read (one group, two topics) gives up and leaves, so the other topic keeps every reader', async () => {
    // Two deployments under one group name: the group's leader assigns only its own topic, across
    // every member. Unchecked, half the leader's partitions went to a member that cannot read them.
    const [x, y] = [await topic(4), await topic(4)];
    const groupId = uniqueName('port-shared');
    const crashes = new Map<string, Error>();
    const members = [x, y].map((name) => ({ name, ...member(groupId, name, { maxRestarts: 0, onCrash: (err, fatal) => fatal && crashes.set(name, err) }) }));
    await Promise.all(members.map((m) => m.running));
    await waitFor('one member to give up', () => crashes.size > 0, 60_000);
    expect(crashes.size).toBe(1);
    const [left, err] = [...crashes][0]!;
    const stayed = members.find((m) => m.name !== left)!;
    expect(err).toBeInstanceOf(KafkaClientError);
    expect(err!.message).toContain(`consumer group ${groupId} is shared with members that read other topics`);
    expect(err!.message).toContain(stayed.name);
    expect(kafkaError(err, 'consuming').code).toBe('kafka_rejected');
    // The member that stayed owns its whole topic once the other has left.
    await waitFor('every partition with the member that reads it', () => stayed.owned.size === 4, 60_000);
    expect([...stayed.owned].sort()).toEqual([0, 1, 2, 3].map((p) => `${stayed.name}/${p}`));
  }, 150_000);

  it('a client crash reaches the owner as an error (the topic deleted under a running member)', async () => {
    const name = await topic(1);
    const consumer = kafka.consumer({ groupId: uniqueName('port-crash'), sessionTimeoutMs: 6_000, maxWaitTimeMs: 100 });
    consumers.push(consumer);
    const crashes: Array<{ err: Error; fatal: boolean }> = [];
    await consumer.run({ topics: [name], maxRestarts: 0, onBatch: async () => undefined, onCrash: (err, fatal) => crashes.push({ err, fatal }) });
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteTopics([name]);
    await admin.disconnect();
    await waitFor('the crash', () => crashes.some((c) => c.fatal), 100_000);
    const { err } = crashes.find((c) => c.fatal)!;
    expect(err).toBeInstanceOf(Error);
    expect(err.message.length).toBeGreaterThan(0);
    // The owner turns it into a RelayError with a code like any other Kafka failure.
    expect(kafkaError(err, 'consuming').code).toMatch(/^kafka_(unavailable|rejected)$/);
  }, 150_000);
});
