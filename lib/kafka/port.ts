/**
 * The Kafka port: the only Kafka types the rest of ats-relay sees. Every producer, consumer, CLI,
 * test and dev tool talks to these interfaces; one adapter (`kafkajs-adapter.ts`) implements them.
 * A client swap writes a second adapter that passes test/kafka/port.test.ts and touches nothing else.
 *
 * Offsets are decimal strings (Kafka offsets are int64; JavaScript numbers are exact only to 2^53).
 * Errors leave every method as `KafkaClientError` (see errors.ts) with the client's retriable verdict.
 */

/** Header values as produced and consumed: bytes or text; a repeated header is an array. */
export type RecordHeaders = Record<string, Buffer | string | Array<Buffer | string> | undefined>;

/** A record to produce. Without `partition`, the key picks it (murmur2, as the Java client does). */
export interface OutboundRecord {
  key?: Buffer | string | null;
  value: Buffer | string | null;
  headers?: RecordHeaders;
  partition?: number;
  /** Epoch ms as a string; default: the producer's clock. */
  timestamp?: string;
}

/** Where one produced record landed. */
export interface RecordPosition {
  topic: string;
  partition: number;
  offset: string;
}

/** acks = -1: the leader waits for the full in-sync replica set. Required by the idempotent producer. */
export const ACKS_ALL = -1;

export interface SendRequest {
  topic: string;
  messages: OutboundRecord[];
  /** Default ACKS_ALL. */
  acks?: number;
}

export interface Producer {
  connect(): Promise<void>;
  /** Resolves once the broker acked every record, with each record's position, in request order. */
  send(request: SendRequest): Promise<RecordPosition[]>;
  /** Several topics in one request; positions follow the order of `topicMessages`, then of each list. */
  sendBatch(request: { topicMessages: Array<{ topic: string; messages: OutboundRecord[] }>; acks?: number }): Promise<RecordPosition[]>;
  disconnect(): Promise<void>;
}

export interface RetryPolicy {
  /** Tries after the first one. */
  retries?: number;
  initialRetryTime?: number;
  maxRetryTime?: number;
}

export interface ProducerOptions {
  /** Idempotent producer (default true): no duplicates or reordering from the client's own retries. */
  idempotent?: boolean;
  /**
   * Retries of one send before it fails with a retriable error. Bounded by default (8 tries with
   * backoff up to 5 s, about 25 s in all) so a broker outage surfaces instead of hanging the caller.
   */
  retry?: RetryPolicy;
}

export interface TopicPartition {
  topic: string;
  partition: number;
}

export interface TopicPartitionOffset extends TopicPartition {
  /** The next offset to read. */
  offset: string;
}

/** Partitions of a topic; without `partitions`, all of them (pause/resume). */
export interface TopicPartitions {
  topic: string;
  partitions?: number[];
}

export interface ConsumedRecord {
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: RecordHeaders;
  /** Epoch ms as a string. */
  timestamp: string;
}

/** Records of one partition as one fetch returned them. */
export interface ConsumedBatch {
  topic: string;
  partition: number;
  records: ConsumedRecord[];
  /** The partition's high watermark when fetched (lag = highWatermark − last offset − 1). */
  highWatermark: string;
  /** The last offset this fetch covered, control records and gaps included. */
  lastOffset(): string;
  /**
   * Take the record at `offset` as read: the partition's next fetch starts after it. Records not
   * resolved when `onBatch` returns are fetched again (a gate that stops early relies on this).
   */
  resolveOffset(offset: string): void;
  /** Tell the group this member is alive (long batches call it between records). */
  heartbeat(): Promise<void>;
  /** The batch is no longer wanted: the member is stopping or the partition moved in a rebalance. */
  isStale(): boolean;
}

export interface GroupConsumerOptions {
  groupId: string;
  /** How long a dead member's partitions wait before the group hands them on. Default 30 s. */
  sessionTimeoutMs?: number;
  rebalanceTimeoutMs?: number;
  /** Longest a fetch waits for data; bounds how soon a paused or idle consumer notices news. */
  maxWaitTimeMs?: number;
  maxBytesPerPartition?: number;
}

export interface GroupRunOptions {
  topics: readonly string[];
  /** Where a group without committed offsets starts (default: the beginning). */
  fromBeginning?: boolean;
  /** Partitions that became this member's (after every group join that added some). */
  onAssigned?(partitions: TopicPartition[]): void;
  /** Partitions that are no longer this member's (after every group join that took some). */
  onRevoked?(partitions: TopicPartition[]): void;
  /** One partition's batch at a time; offsets are never committed for the caller. */
  onBatch(batch: ConsumedBatch): Promise<void>;
  /**
   * The client crashed. `fatal`: it gave up (a non-retriable error, or more than `maxRestarts`
   * crashes within `restartWindowMs`) and will not fetch again: the owner must close and exit
   * non-zero so its supervisor restarts it. Otherwise the client rejoins by itself.
   */
  onCrash?(err: Error, fatal: boolean): void;
  /** Restarts tolerated within `restartWindowMs` before a crash counts as fatal (default 3 in 120 s). */
  maxRestarts?: number;
  restartWindowMs?: number;
}

/** A member of a consumer group whose offsets are in the caller's hands (nothing auto-committed). */
export interface GroupConsumer {
  /** Connect, join, subscribe and start fetching; resolves once fetching has started. */
  run(opts: GroupRunOptions): Promise<void>;
  pause(partitions: TopicPartitions[]): void;
  resume(partitions: TopicPartitions[]): void;
  /** Read `partition` from `offset` on (the next fetch). */
  seek(position: TopicPartitionOffset): void;
  commit(offsets: TopicPartitionOffset[]): Promise<void>;
  /** Leave the group and close connections. Safe to call more than once. */
  disconnect(): Promise<void>;
}

export interface TopicCreation {
  topic: string;
  partitions: number;
  replicationFactor: number;
  configs?: Record<string, string>;
}

export interface TopicMetadata {
  topic: string;
  partitions: Array<{ partition: number; leader: number; replicas: number[] }>;
}

export interface PartitionWatermarks {
  partition: number;
  low: string;
  high: string;
}

export interface GroupOffsets {
  topic: string;
  /** `offset` is "-1" for a partition the group never committed. */
  partitions: Array<{ partition: number; offset: string }>;
}

export interface GroupListing {
  groupId: string;
  /** "consumer" for consumer groups ("" for some empty ones). */
  protocolType: string;
}

export interface GroupDescription {
  groupId: string;
  state: string;
  members: GroupMember[];
}

export interface GroupMember {
  memberId: string;
  clientId: string;
  /** Partitions per topic the group leader assigned to this member in the current generation (empty while a rebalance is under way). */
  assignment: Record<string, number[]>;
}

export interface Admin {
  /**
   * Every topic of the cluster. Fails as a whole while any topic, anyone's, has a partition without a
   * leader: to ask whether given topics exist, use lib/topics.ts existingTopics.
   */
  listTopics(): Promise<string[]>;
  /**
   * Creates the topics without waiting for their leaders (see lib/topics.ts waitForLeaders). A topic
   * that exists already is left as it is (no error; a race with another creator may still answer
   * the broker's TOPIC_ALREADY_EXISTS).
   */
  createTopics(topics: TopicCreation[]): Promise<void>;
  deleteTopics(topics: string[]): Promise<void>;
  topicMetadata(topics: string[]): Promise<TopicMetadata[]>;
  /** The named configs of each topic as the cluster has them: topic → name → value. */
  topicConfigs(topics: string[], names: string[]): Promise<Record<string, Record<string, string>>>;
  fetchTopicOffsets(topic: string): Promise<PartitionWatermarks[]>;
  /** Per partition, the first offset whose timestamp is at or after `timestamp` (epoch ms). */
  fetchTopicOffsetsByTimestamp(topic: string, timestamp: number): Promise<Array<{ partition: number; offset: string }>>;
  fetchOffsets(groupId: string, topics: string[]): Promise<GroupOffsets[]>;
  setOffsets(groupId: string, topic: string, partitions: Array<{ partition: number; offset: string }>): Promise<void>;
  /** Move a group (with no members) to the start of `topic`: each partition's low watermark is committed. */
  resetOffsetsToEarliest(groupId: string, topic: string): Promise<void>;
  listGroups(): Promise<GroupListing[]>;
  describeGroups(groupIds: string[]): Promise<GroupDescription[]>;
  deleteGroups(groupIds: string[]): Promise<void>;
  /** Brokers the cluster reports (a cheap "is it up" probe). */
  brokerCount(): Promise<number>;
}

export interface AdminSession {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
}

/** One cluster: builds producers, group consumers and admin sessions. */
export interface KafkaClient {
  producer(opts?: ProducerOptions): Producer;
  consumer(opts: GroupConsumerOptions): GroupConsumer;
  admin(): Admin & AdminSession;
}

export interface KafkaClientOptions {
  brokers: string[];
  clientId: string;
  /** Connection-level retries (connect, metadata, admin calls). Default: the client's own. */
  retry?: RetryPolicy;
  connectionTimeoutMs?: number;
  requestTimeoutMs?: number;
}

/** One string per topic-partition, for maps keyed by both. */
export const tpKey = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

/** The topic and partition of a tpKey. */
export function fromTpKey(key: string): { topic: string; partition: number } {
  const cut = key.lastIndexOf('\u0000');
  return { topic: key.slice(0, cut), partition: Number(key.slice(cut + 1)) };
}
