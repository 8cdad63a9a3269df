/**
 * The topics ats-relay owns, derived from `config.topics`: the main topic, one per retry tier and
 * the DLQ. `ensureTopics` creates what is missing and reports drift without changing anything that
 * holds data (partitions are never reduced, nothing is deleted; adding partitions moves keys, so that
 * is left to an operator's decision too).
 */
import type { Config, TopicsConfig } from './config.ts';
import { brokerErrorOf, type Admin, type TopicMetadata } from './kafka/index.ts';

export type TopicRole = 'main' | 'retry' | 'dlq' | 'status' | 'jobs';

export interface TopicSpec {
  topic: string;
  role: TopicRole;
  partitions: number;
  replicationFactor: number;
  /** Topic-level configs set at creation and compared afterwards (retention.ms, cleanup.policy, …). */
  configs: Record<string, string>;
}

/**
 * Retry tiers and the DLQ get at least the main topic's partitions (`retryPartitions` may raise
 * theirs, never lower it), so a tier never becomes the bottleneck of the consumers that replay it.
 */
export function topicSpecs(topics: TopicsConfig, opts: { retryPartitions?: number } = {}): TopicSpec[] {
  const base = (retentionMs: number): Record<string, string> => ({
    'cleanup.policy': 'delete',
    'retention.ms': String(retentionMs),
    // With acks=all, a write needs this many in-sync replicas; 2 of 3 survives one broker down.
    'min.insync.replicas': String(topics.replicationFactor >= 3 ? 2 : 1),
  });
  const main = topics.partitions;
  const tiers = Math.max(main, opts.retryPartitions ?? main);
  return [
    { topic: topics.applications, role: 'main', partitions: main, replicationFactor: topics.replicationFactor, configs: base(topics.retentionMs) },
    ...topics.retryTiers.map(
      (tier): TopicSpec => ({
        topic: tier.topic,
        role: 'retry',
        partitions: tiers,
        replicationFactor: topics.replicationFactor,
        configs: base(topics.retentionMs),
      }),
    ),
    {
      topic: topics.dlq,
      role: 'dlq',
      partitions: tiers,
      replicationFactor: topics.replicationFactor,
      configs: base(topics.dlqRetentionMs),
    },
  ];
}

/**
 * The way back: ApplicationStatusChanged (keyed by our application id) and JobSynced (keyed by
 * integration id and ATS job id). As many partitions as the main topic, the main topic's retention.
 */
export function inboundTopicSpecs(config: Pick<Config, 'topics' | 'inbound'>): TopicSpec[] {
  const { topics, inbound } = config;
  const configs = {
    'cleanup.policy': 'delete',
    'retention.ms': String(topics.retentionMs),
    'min.insync.replicas': String(topics.replicationFactor >= 3 ? 2 : 1),
  };
  return [
    { topic: inbound.statusTopic, role: 'status', partitions: topics.partitions, replicationFactor: topics.replicationFactor, configs },
    { topic: inbound.jobsTopic, role: 'jobs', partitions: topics.partitions, replicationFactor: topics.replicationFactor, configs: { ...configs } },
  ];
}

export type TopicStatus = 'created' | 'ok' | 'drift';

export interface TopicReport {
  topic: string;
  role: TopicRole;
  status: TopicStatus;
  partitions: number;
  replicationFactor: number;
  configs: Record<string, string>;
  /** What differs from the spec, e.g. `partitions: 3 < 12 configured`. */
  drift: string[];
}

export interface TopicDescription {
  topic: string;
  exists: boolean;
  partitions: number;
  replicationFactor: number;
  configs: Record<string, string>;
}

/**
 * The metadata of each of `topics` that exists, asked topic by topic: a cluster-wide listing fails as
 * a whole while any topic in the cluster, someone else's included, has a partition without a leader
 * (one being deleted).
 */
async function metadataOfExisting(admin: Admin, topics: readonly string[]): Promise<Map<string, TopicMetadata>> {
  const found = await Promise.all(
    topics.map(async (topic) => {
      try {
        return (await admin.topicMetadata([topic])).find((m) => m.topic === topic);
      } catch (err) {
        if (brokerErrorOf(err) === 'UNKNOWN_TOPIC_OR_PARTITION') return undefined;
        throw err;
      }
    }),
  );
  return new Map(found.filter((m): m is TopicMetadata => m !== undefined).map((m) => [m.topic, m]));
}

/** Which of `topics` exist (see metadataOfExisting: never a cluster-wide listing). */
export async function existingTopics(admin: Admin, topics: readonly string[]): Promise<Set<string>> {
  return new Set((await metadataOfExisting(admin, topics)).keys());
}

/** Partition count, replication factor and the spec's configs of each topic as the cluster has them. */
export async function describeTopics(admin: Admin, specs: readonly TopicSpec[]): Promise<TopicDescription[]> {
  const metadata = await metadataOfExisting(admin, specs.map((s) => s.topic));
  const present = specs.filter((s) => metadata.has(s.topic));
  const names = [...new Set(present.flatMap((s) => Object.keys(s.configs)))];
  const configs = present.length ? await admin.topicConfigs(present.map((s) => s.topic), names) : {};
  return specs.map((spec) => {
    const meta = metadata.get(spec.topic);
    if (!meta) return { topic: spec.topic, exists: false, partitions: 0, replicationFactor: 0, configs: {} };
    const own = configs[spec.topic] ?? {};
    return {
      topic: spec.topic,
      exists: true,
      partitions: meta.partitions.length,
      replicationFactor: Math.min(...meta.partitions.map((p) => p.replicas.length)),
      configs: Object.fromEntries(Object.keys(spec.configs).filter((name) => own[name] !== undefined).map((name) => [name, own[name]!])),
    };
  });
}

function driftOf(spec: TopicSpec, actual: TopicDescription): string[] {
  const drift: string[] = [];
  if (actual.partitions < spec.partitions) drift.push(`partitions: ${actual.partitions} < ${spec.partitions} configured`);
  if (actual.replicationFactor < spec.replicationFactor) {
    drift.push(`replication factor: ${actual.replicationFactor} < ${spec.replicationFactor} configured`);
  }
  for (const [name, wanted] of Object.entries(spec.configs)) {
    const got = actual.configs[name];
    if (got !== wanted) drift.push(`${name}: ${got ?? '(unset)'} ≠ ${wanted} configured`);
  }
  return drift;
}

/** Until every partition of `topics` has a leader in the metadata (a bounded wait). */
export async function waitForLeaders(admin: Admin, topics: string[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const meta = await admin.topicMetadata(topics);
      if (meta.length === topics.length && meta.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))) return;
    } catch (err) {
      const type = brokerErrorOf(err);
      if (type !== 'UNKNOWN_TOPIC_OR_PARTITION' && type !== 'LEADER_NOT_AVAILABLE') throw err;
    }
    if (Date.now() > deadline) throw new Error(`topics ${topics.join(', ')} have no leaders after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Create the missing topics (waiting for their leaders) and compare the others with their spec.
 * Idempotent: a second run reports `ok` for all. More partitions than configured is not drift.
 */
export async function ensureTopics(admin: Admin, specs: readonly TopicSpec[]): Promise<TopicReport[]> {
  const before = await describeTopics(admin, specs);
  const missing = specs.filter((s) => !before.find((d) => d.topic === s.topic)?.exists);
  if (missing.length) {
    try {
      // Waited for below: a broker answers UNKNOWN_TOPIC_OR_PARTITION for a moment after creating a
      // topic (seen right after a broker start).
      await admin.createTopics(missing.map((s) => ({ topic: s.topic, partitions: s.partitions, replicationFactor: s.replicationFactor, configs: s.configs })));
    } catch (err) {
      // Another process created one of them first; the description below tells what is there.
      if (brokerErrorOf(err) !== 'TOPIC_ALREADY_EXISTS' && !/already exists/i.test((err as Error).message)) throw err;
    }
    await waitForLeaders(admin, missing.map((s) => s.topic));
  }
  const after = await describeTopics(admin, specs);
  return specs.map((spec, i) => {
    const actual = after[i]!;
    const drift = actual.exists ? driftOf(spec, actual) : ['missing after create'];
    const created = missing.includes(spec);
    return {
      topic: spec.topic,
      role: spec.role,
      status: drift.length ? 'drift' : created ? 'created' : 'ok',
      partitions: actual.partitions,
      replicationFactor: actual.replicationFactor,
      configs: actual.configs,
      drift,
    };
  });
}
