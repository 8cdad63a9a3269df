/**
 * What the Pipeline page shows, read from the cluster on each request (all of it cheap metadata):
 * every ats-relay topic with its partitions' watermarks and records/min over the last 15 minutes
 * (from the offsets at that timestamp), and every consumer group that has committed offsets on those
 * topics, with its state, members and lag per partition.
 */
import type { Config } from '../../lib/config.ts';
import { kafkaError, withAdmin, type KafkaClient } from '../../lib/kafka/index.ts';
import { existingTopics, topicSpecs, type TopicRole } from '../../lib/topics.ts';

export const RATE_WINDOW_MS = 15 * 60_000;
/** Groups whose offsets are fetched at once (one request each). */
const GROUP_CONCURRENCY = 8;

export interface PartitionOffsets {
  partition: number;
  low: number;
  high: number;
  /** Records appended in the last RATE_WINDOW_MS. */
  recent: number;
}

export interface TopicView {
  topic: string;
  role: TopicRole;
  exists: boolean;
  partitions: PartitionOffsets[];
  endOffsets: number;
  perMinute: number;
}

export interface GroupLag {
  topic: string;
  partition: number;
  /** null: nothing committed yet. */
  committed: number | null;
  high: number;
  lag: number | null;
}

export interface GroupView {
  groupId: string;
  state: string;
  members: number;
  partitions: GroupLag[];
  totalLag: number;
}

export interface PipelineView {
  topics: TopicView[];
  groups: GroupView[];
  readAt: Date;
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

export async function readPipeline(kafka: KafkaClient, config: Config, now = Date.now()): Promise<PipelineView> {
  const specs = topicSpecs(config.topics);
  try {
    return await withAdmin(kafka, async (admin) => {
      const existing = await existingTopics(admin, specs.map((s) => s.topic));
      const topics: TopicView[] = [];
      for (const spec of specs) {
        if (!existing.has(spec.topic)) {
          topics.push({ topic: spec.topic, role: spec.role, exists: false, partitions: [], endOffsets: 0, perMinute: 0 });
          continue;
        }
        const [marks, since] = await Promise.all([admin.fetchTopicOffsets(spec.topic), admin.fetchTopicOffsetsByTimestamp(spec.topic, now - RATE_WINDOW_MS)]);
        const partitions = marks
          .map((m) => {
            const high = Number(m.high);
            const at = Number(since.find((s) => s.partition === m.partition)?.offset ?? high);
            return { partition: m.partition, low: Number(m.low), high, recent: at < 0 ? 0 : Math.max(0, high - at) };
          })
          .sort((a, b) => a.partition - b.partition);
        const recent = partitions.reduce((n, p) => n + p.recent, 0);
        topics.push({ topic: spec.topic, role: spec.role, exists: true, partitions, endOffsets: partitions.reduce((n, p) => n + p.high, 0), perMinute: recent / (RATE_WINDOW_MS / 60_000) });
      }
      const ours = topics.filter((t) => t.exists);
      const highOf = new Map(ours.flatMap((t) => t.partitions.map((p) => [`${t.topic}\u0000${p.partition}`, p.high] as const)));

      const listed = await admin.listGroups();
      const ids = listed.filter((g) => g.protocolType === 'consumer' || g.protocolType === '').map((g) => g.groupId);
      const withOffsets = await mapLimit(ids, GROUP_CONCURRENCY, async (groupId) => {
        if (ours.length === 0) return undefined;
        const offsets = await admin.fetchOffsets(groupId, ours.map((t) => t.topic));
        const partitions: GroupLag[] = offsets.flatMap((t) =>
          t.partitions.map((p) => {
            const committed = Number(p.offset) >= 0 ? Number(p.offset) : null;
            const high = highOf.get(`${t.topic}\u0000${p.partition}`) ?? 0;
            return { topic: t.topic, partition: p.partition, committed, high, lag: committed === null ? null : Math.max(0, high - committed) };
          }),
        );
        return partitions.some((p) => p.committed !== null) ? { groupId, partitions: partitions.filter((p) => p.committed !== null || p.high > 0) } : undefined;
      });
      const relevant = withOffsets.filter((g): g is { groupId: string; partitions: GroupLag[] } => g !== undefined);
      const described = relevant.length ? await admin.describeGroups(relevant.map((g) => g.groupId)) : [];
      const groups: GroupView[] = relevant
        .map((g) => {
          const d = described.find((x) => x.groupId === g.groupId);
          // Partitions without a commit show only when they hold records (a topic the group reads, e.g. a new partition).
          const read = new Set(g.partitions.filter((p) => p.committed !== null).map((p) => p.topic));
          const partitions = g.partitions.filter((p) => p.committed !== null || (read.has(p.topic) && p.high > 0)).sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
          return { groupId: g.groupId, state: d?.state ?? 'Unknown', members: d?.members.length ?? 0, partitions, totalLag: partitions.reduce((n, p) => n + (p.lag ?? 0), 0) };
        })
        .sort((a, b) => a.groupId.localeCompare(b.groupId));
      return { topics, groups, readAt: new Date(now) };
    });
  } catch (err) {
    throw kafkaError(err, `Kafka unreachable at ${config.kafka.brokers.join(',')}`);
  }
}
