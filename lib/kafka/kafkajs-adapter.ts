/**
 * The kafkajs adapter: the one file that imports kafkajs (eslint's no-restricted-imports enforces it).
 * It implements lib/kafka/port.ts and must pass test/kafka/port.test.ts; nothing of kafkajs leaks
 * out, not its types, events or errors.
 *
 * kafkajs logs go to pino (namespace and broker fields kept, level mapped); its errors leave as
 * KafkaClientError with kafkajs' own `retriable` verdict.
 */
import { createRequire } from 'node:module';
import kafkajs, { Kafka, logLevel, Partitioners, type Consumer, type LogEntry, type Message, type Producer as KafkajsProducer, type RecordMetadata } from 'kafkajs';
import type { Logger } from '../logger.ts';
import { sleep } from '../sleep.ts';
import { KafkaClientError } from './errors.ts';
import { partitionForKey } from './partitioner.ts';
import type {
  Admin,
  AdminSession,
  ConsumedBatch,
  GroupConsumer,
  GroupConsumerOptions,
  GroupRunOptions,
  KafkaClient,
  KafkaClientOptions,
  OutboundRecord,
  Producer,
  ProducerOptions,
  RecordPosition,
  TopicPartition,
} from './port.ts';
import { ACKS_ALL, tpKey } from './port.ts';

// Not visible to Node's named-export detection for this CommonJS package; read it off the default export.
const { ConfigResourceTypes, AssignerProtocol } = kafkajs;

/** The part of kafkajs' per-connection request queue (src/network/requestQueue) that the fix below touches. */
interface RequestQueueInternals {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  checkPendingRequests(): void;
  scheduleCheckPendingRequests(): void;
}

/** kafkajs' own interval for re-checking requests that wait behind the in-flight limit, ms. */
export const PENDING_CHECK_INTERVAL_MS = 10;

/**
 * kafkajs 2.2.4 re-arms its request queue's check after every check, with a delay of
 * `throttledUntil - now`: negative whenever the broker throttles nothing, which Node clamps to 1 ms.
 * Every broker connection so wakes its process about a thousand times a second for nothing, idle or
 * busy (kafkajs issues #1556 and #1704, unfixed in any release; on Node 24 the clamp is what prints
 * TimeoutNegativeWarning). An idle dispatcher measured ~890 wake-ups/s and 4.6 % of a core.
 *
 * The check only matters while requests wait: a request that completes or times out checks again
 * itself, and a push that has to wait arms the timer, so with nothing pending there is nothing to
 * poll for. While something waits, the timer runs as kafkajs meant it: until the throttle ends, else
 * every 10 ms.
 */
function fixRequestQueuePolling(RequestQueue: { prototype: RequestQueueInternals }): void {
  RequestQueue.prototype.scheduleCheckPendingRequests = function scheduleCheckPendingRequests(this: RequestQueueInternals): void {
    if (this.throttleCheckTimeoutId || this.pending.length === 0) return;
    const throttledFor = this.throttledUntil - Date.now();
    this.throttleCheckTimeoutId = setTimeout(
      () => {
        this.throttleCheckTimeoutId = null;
        this.checkPendingRequests();
      },
      throttledFor > 0 ? throttledFor : PENDING_CHECK_INTERVAL_MS,
    );
  };
}

/** kafkajs' RequestQueue class: CommonJS, not part of its public API (the version is pinned in package.json). */
export function kafkajsRequestQueue(): { prototype: RequestQueueInternals } {
  return createRequire(import.meta.url)('kafkajs/src/network/requestQueue/index.js') as { prototype: RequestQueueInternals };
}

fixRequestQueuePolling(kafkajsRequestQueue());

const PINO_LEVEL: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

/**
 * kafkajs warns about this on every idempotent producer with bounded retries. We bound them on purpose:
 * a caller gets a typed, retriable error instead of an endless wait, and event ids make its retry safe.
 */
const EXPECTED_WARNINGS = ['Limiting retries for the idempotent producer may invalidate EoS guarantees'];

/**
 * kafkajs logs every error response at ERROR before it retries, and the producer logs the failed send
 * again: a topic created a moment ago answers "does not host this topic-partition" until its leader
 * is elected, and a partition whose leader moved answers "not the leader" until the metadata is
 * refreshed. Group coordination is the same: every heartbeat during a rebalance answers "rebalancing"
 * (the member rejoins), and a coordinator that just started or moved answers "loading" or "not the
 * coordinator" (the request is retried). The caller sees the error if the retries run out; the log
 * lines alone only alarm whoever reads them (the demo's first run, every leader election, every
 * rebalance).
 */
const RETRIED_RESPONSE_ERRORS = [
  'This server does not host this topic-partition',
  'There is no leader for this topic-partition as we are in the middle of a leadership election',
  'This server is not the leader for that topic-partition',
  'The group is rebalancing, so a rejoin is needed',
  "The coordinator is loading and hence can't process requests for this group",
  'The group coordinator is not available',
  'This is not the correct coordinator for this group',
];
const FAILED_SEND = 'Failed to send messages: ';

/** The pino level for one kafkajs log entry. */
export function pinoLevelOf({ namespace, level, log }: Pick<LogEntry, 'namespace' | 'level' | 'log'>): 'error' | 'warn' | 'info' | 'debug' {
  if (EXPECTED_WARNINGS.includes(log.message)) return 'debug';
  if (namespace === 'Connection' && RETRIED_RESPONSE_ERRORS.includes(String((log as { error?: unknown }).error))) return 'debug';
  // The producer's line for the same answer (it logs every attempt; the caller gets the error if none succeeds).
  if (namespace === 'Producer' && log.message.startsWith(FAILED_SEND) && RETRIED_RESPONSE_ERRORS.includes(log.message.slice(FAILED_SEND.length))) return 'debug';
  return PINO_LEVEL[level] ?? 'info';
}

/** kafkajs' INFO is chatty (every connect and group join); it is logged at debug unless it is a problem. */
function kafkaLogLevel(logger: Logger): logLevel {
  if (logger.isLevelEnabled('debug')) return logLevel.DEBUG;
  if (logger.isLevelEnabled('warn')) return logLevel.WARN;
  if (logger.isLevelEnabled('error')) return logLevel.ERROR;
  return logLevel.NOTHING;
}

function pinoLogCreator(logger: Logger) {
  // kafkajs adds `logger: 'kafkajs'` to every entry itself.
  return () =>
    ({ namespace, level, log }: LogEntry): void => {
      const { message, timestamp: _timestamp, ...extra } = log;
      logger[pinoLevelOf({ namespace, level, log })]({ namespace, ...extra }, message);
    };
}

/** Retries exhausted on a retriable error is still retriable for the caller (a later attempt may work). */
const RETRIABLE_NAMES = new Set(['KafkaJSNumberOfRetriesExceeded', 'KafkaJSConnectionError', 'KafkaJSRequestTimeoutError', 'KafkaJSConnectionClosedError']);

/** A kafkajs error as the port's KafkaClientError. */
function portError(err: unknown): Error {
  if (err instanceof KafkaClientError || !(err instanceof Error)) return err instanceof Error ? err : new Error(String(err));
  const e = err as Error & { retriable?: boolean; type?: string };
  const retriable = e.retriable !== false || RETRIABLE_NAMES.has(e.name);
  return new KafkaClientError(e.message, { retriable, brokerError: e.type, clientError: e.name, cause: err });
}

async function guarded<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw portError(err);
  }
}

/**
 * A metadata call of kafkajs' admin (topic metadata, topic list, cluster). kafkajs refreshes its metadata
 * and then asks a broker again; when the broker refuses that second request (a topic deleted or losing
 * its leader in between, under a millisecond), kafkajs drops the broker's error and fails reading `null`
 * (`TypeError: Cannot read properties of null`). A moment later the refresh itself gets the refusal and
 * the broker's own error comes through, so the call is asked again; reproduced against a real broker
 * with topics deleted while polled: 14 such failures in 30 deletions.
 */
async function metadataCall<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      if (!(err instanceof TypeError)) throw portError(err);
      if (attempt === METADATA_ATTEMPTS) {
        throw new KafkaClientError(`no broker answered the metadata request (${err.message})`, { retriable: true, clientError: 'NoMetadata', cause: err });
      }
      await sleep(10 * attempt);
    }
  }
}
const METADATA_ATTEMPTS = 5;

function guardedSync<T>(call: () => T): T {
  try {
    return call();
  } catch (err) {
    throw portError(err);
  }
}

/**
 * The Java client's partitioning (partitioner.ts) for keyed records, kafkajs' default for records
 * without a key (round-robin over partitions with a leader), noting each choice so a send can tell
 * each record's offset.
 */
function recordingPartitioner(chosen: WeakMap<Message, number>): () => ReturnType<typeof Partitioners.DefaultPartitioner> {
  return () => {
    const keyless = Partitioners.DefaultPartitioner();
    return (args) => {
      const { message, partitionMetadata } = args;
      const partition = message.partition ?? (message.key == null ? keyless(args) : partitionForKey(message.key, partitionMetadata.length));
      chosen.set(message, partition);
      return partition;
    };
  };
}

/**
 * A producer for events whose per-key order matters: idempotent, one request in flight per broker
 * (so retries cannot reorder), Java-compatible murmur2 partitioning (same key → same partition as
 * any other client).
 */
function createProducer(kafka: Kafka, opts: ProducerOptions): Producer {
  const chosen = new WeakMap<Message, number>();
  const producer: KafkajsProducer = kafka.producer({
    idempotent: opts.idempotent ?? true,
    maxInFlightRequests: 1,
    createPartitioner: recordingPartitioner(chosen),
    retry: opts.retry ?? { retries: 8, initialRetryTime: 300, maxRetryTime: 5_000 },
  });

  /** Records of one partition take consecutive offsets in request order from the partition's base offset. */
  async function sendTopics(topicMessages: Array<{ topic: string; messages: OutboundRecord[] }>, acks: number): Promise<RecordPosition[]> {
    // Fresh objects per send, so the partitioner's note belongs to this request only.
    const sent = topicMessages.map(({ topic, messages }) => ({ topic, messages: messages.map((m): Message => ({ ...m, key: m.key ?? null })) }));
    const acked: RecordMetadata[] = await guarded(() => producer.sendBatch({ acks, topicMessages: sent }));
    const next = new Map<string, bigint>(acked.map((m) => [tpKey(m.topicName, m.partition), BigInt(m.baseOffset ?? m.offset ?? '0')]));
    const positions: RecordPosition[] = [];
    for (const { topic, messages } of sent) {
      for (const message of messages) {
        const partition = chosen.get(message) ?? message.partition ?? 0;
        const slot = tpKey(topic, partition);
        const offset = next.get(slot) ?? 0n;
        next.set(slot, offset + 1n);
        positions.push({ topic, partition, offset: String(offset) });
      }
    }
    return positions;
  }

  return {
    connect: () => guarded(() => producer.connect()),
    send: ({ topic, messages, acks }) => sendTopics([{ topic, messages }], acks ?? ACKS_ALL),
    sendBatch: ({ topicMessages, acks }) => sendTopics(topicMessages, acks ?? ACKS_ALL),
    disconnect: () => guarded(() => producer.disconnect()),
  };
}

function partitionsOf(assignment: Record<string, number[]>): Map<string, TopicPartition> {
  const out = new Map<string, TopicPartition>();
  for (const [topic, partitions] of Object.entries(assignment)) for (const partition of partitions) out.set(tpKey(topic, partition), { topic, partition });
  return out;
}

/**
 * A group member with offsets in the caller's hands: nothing auto-committed or auto-resolved, one
 * partition's batch at a time. Heartbeats run between batches and whenever a batch asks.
 */
function createGroupConsumer(kafka: Kafka, logger: Logger, opts: GroupConsumerOptions): GroupConsumer {
  const sessionTimeout = opts.sessionTimeoutMs ?? 30_000;
  const consumer: Consumer = kafka.consumer({
    groupId: opts.groupId,
    sessionTimeout,
    // kafkajs heartbeats from its fetch loop: once a second, a survivor learns of a rebalance a
    // second after the broker starts it (hand-over after a member's SIGKILL ≈ session + 1 s).
    heartbeatInterval: Math.min(1_000, Math.floor(sessionTimeout / 3)),
    allowAutoTopicCreation: false,
    ...(opts.rebalanceTimeoutMs ? { rebalanceTimeout: opts.rebalanceTimeoutMs } : {}),
    ...(opts.maxWaitTimeMs !== undefined ? { maxWaitTimeInMs: opts.maxWaitTimeMs } : {}),
    ...(opts.maxBytesPerPartition ? { maxBytesPerPartition: opts.maxBytesPerPartition } : {}),
  });
  let disconnected: Promise<void> | undefined;

  return {
    async run(run: GroupRunOptions) {
      const maxRestarts = run.maxRestarts ?? 3;
      const windowMs = run.restartWindowMs ?? 120_000;
      const restarts: number[] = [];
      let gaveUp = false;
      let owned = new Map<string, TopicPartition>();
      // A group shared with members that read other topics (two deployments under one group name):
      // the leader hands out only its own topics' partitions, and kafkajs drops the foreign ones from
      // this member's share unread, so partitions of the leader's topic sit with no reader while every
      // member looks healthy. This member leaves, which gives them back to the members that read
      // them, and its owner exits with the reason. kafkajs tells us during the group sync; leaving is
      // done once the join has finished (a disconnect during the join does not leave the group).
      let shared: KafkaClientError | undefined;
      consumer.on(consumer.events.RECEIVED_UNSUBSCRIBED_TOPICS, (e) => {
        const { topicsNotSubscribed, topicsSubscribed } = e.payload;
        shared ??= new KafkaClientError(
          `consumer group ${opts.groupId} is shared with members that read other topics: this member reads ${topicsSubscribed.join(', ')} ` +
            `and was handed partitions of ${topicsNotSubscribed.join(', ')}, which it cannot read; give each deployment its own group (--group)`,
          { retriable: false, clientError: 'GroupSharedAcrossTopics' },
        );
      });
      consumer.on(consumer.events.GROUP_JOIN, (e) => {
        if (shared) {
          if (gaveUp) return;
          gaveUp = true;
          const err = shared;
          logger.error({ err, group: opts.groupId }, 'consumer group shared with members of other topics; leaving it');
          setImmediate(() => {
            consumer.disconnect().catch(() => undefined);
            run.onCrash?.(err, true);
          });
          return;
        }
        const next = partitionsOf(e.payload.memberAssignment);
        const revoked = [...owned].filter(([key]) => !next.has(key)).map(([, tp]) => tp);
        const added = [...next].filter(([key]) => !owned.has(key)).map(([, tp]) => tp);
        owned = next;
        if (revoked.length) run.onRevoked?.(revoked);
        // Called after every join, even an empty one: the owner learns it is in the group.
        run.onAssigned?.(added);
      });
      consumer.on(consumer.events.CRASH, (e) => {
        if (gaveUp) return;
        const now = Date.now();
        while (restarts.length > 0 && restarts[0]! < now - windowMs) restarts.shift();
        restarts.push(now);
        const fatal = !e.payload.restart || restarts.length > maxRestarts;
        const err = portError(e.payload.error);
        logger.error({ err, group: opts.groupId, restart: e.payload.restart, crashesInWindow: restarts.length, fatal }, fatal ? 'consumer crashed for good' : 'consumer crashed; the client restarts it');
        if (fatal) {
          gaveUp = true;
          // A restart may be scheduled already: disconnecting cancels it, so the member stays gone.
          if (e.payload.restart) consumer.disconnect().catch(() => undefined);
        }
        run.onCrash?.(err, fatal);
      });
      await guarded(async () => {
        await consumer.connect();
        for (const topic of run.topics) await consumer.subscribe({ topic, fromBeginning: run.fromBeginning ?? true });
        await consumer.run({
          autoCommit: false,
          eachBatchAutoResolve: false,
          partitionsConsumedConcurrently: 1,
          eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
            const consumed: ConsumedBatch = {
              topic: batch.topic,
              partition: batch.partition,
              highWatermark: batch.highWatermark,
              records: batch.messages.map((m) => ({ offset: m.offset, key: m.key ?? null, value: m.value ?? null, headers: m.headers ?? {}, timestamp: m.timestamp })),
              lastOffset: () => batch.lastOffset(),
              resolveOffset,
              heartbeat,
              isStale: () => !isRunning() || isStale(),
            };
            await run.onBatch(consumed);
          },
        });
      });
    },
    pause: (partitions) => guardedSync(() => consumer.pause(partitions)),
    resume: (partitions) => guardedSync(() => consumer.resume(partitions)),
    seek: (position) => guardedSync(() => consumer.seek(position)),
    commit: (offsets) =>
      guarded(async () => {
        // kafkajs resolves commitOffsets without sending anything while its runner is not running
        // (between a crash and its own restart, e.g. the broker gone): a caller that stores first and
        // commits after (the DLQ archive) would take an offset for committed that the broker never
        // saw. Only the broker's answer counts, which kafkajs reports as a COMMIT_OFFSETS event.
        const pending = new Map(offsets.map((o) => [tpKey(o.topic, o.partition), String(o.offset)]));
        const stopListening = consumer.on(consumer.events.COMMIT_OFFSETS, (e) => {
          for (const { topic, partitions } of e.payload.topics) {
            for (const { partition, offset } of partitions) {
              const key = tpKey(topic, partition);
              if (pending.get(key) === String(offset)) pending.delete(key);
            }
          }
        });
        try {
          await consumer.commitOffsets(offsets);
        } finally {
          stopListening();
        }
        if (pending.size > 0) {
          throw new KafkaClientError('offset commit not sent: the consumer is not running (restarting after a crash, or stopping)', {
            retriable: true,
            clientError: 'CommitNotSent',
          });
        }
      }),
    disconnect() {
      disconnected ??= guarded(() => consumer.disconnect());
      return disconnected;
    },
  };
}

function createAdmin(kafka: Kafka): Admin & AdminSession {
  const admin = kafka.admin();
  return {
    connect: () => guarded(() => admin.connect()),
    disconnect: () => guarded(() => admin.disconnect()),
    listTopics: () => metadataCall(() => admin.listTopics()),
    async createTopics(topics) {
      await guarded(() =>
        admin.createTopics({
          // Callers wait themselves: kafkajs' own wait gives up on UNKNOWN_TOPIC_OR_PARTITION, which a
          // broker answers for a moment after creating a topic (seen right after a broker start).
          waitForLeaders: false,
          topics: topics.map((t) => ({
            topic: t.topic,
            numPartitions: t.partitions,
            replicationFactor: t.replicationFactor,
            configEntries: Object.entries(t.configs ?? {}).map(([name, value]) => ({ name, value })),
          })),
        }),
      );
    },
    deleteTopics: (topics) => guarded(() => admin.deleteTopics({ topics })),
    async topicMetadata(topics) {
      const { topics: meta } = await metadataCall(() => admin.fetchTopicMetadata({ topics }));
      return meta.map((t) => ({ topic: t.name, partitions: t.partitions.map((p) => ({ partition: p.partitionId, leader: p.leader, replicas: p.replicas })) }));
    },
    async topicConfigs(topics, names) {
      const { resources } = await guarded(() =>
        admin.describeConfigs({ includeSynonyms: false, resources: topics.map((name) => ({ type: ConfigResourceTypes.TOPIC, name, configNames: names })) }),
      );
      return Object.fromEntries(resources.map((r) => [r.resourceName, Object.fromEntries(r.configEntries.map((e) => [e.configName, e.configValue]))]));
    },
    async fetchTopicOffsets(topic) {
      const marks = await guarded(() => admin.fetchTopicOffsets(topic));
      return marks.map((m) => ({ partition: m.partition, low: m.low, high: m.high }));
    },
    async fetchTopicOffsetsByTimestamp(topic, timestamp) {
      const marks = await guarded(() => admin.fetchTopicOffsetsByTimestamp(topic, timestamp));
      return marks.map((m) => ({ partition: m.partition, offset: m.offset }));
    },
    async fetchOffsets(groupId, topics) {
      const offsets = await guarded(() => admin.fetchOffsets({ groupId, topics }));
      return offsets.map((t) => ({ topic: t.topic, partitions: t.partitions.map((p) => ({ partition: p.partition, offset: p.offset })) }));
    },
    setOffsets: (groupId, topic, partitions) => guarded(() => admin.setOffsets({ groupId, topic, partitions })),
    async resetOffsetsToEarliest(groupId, topic) {
      // kafkajs' resetOffsets commits the "earliest" marker (-2), which other clients and tools do not
      // read back as an offset: commit each partition's low watermark instead.
      const marks = await guarded(() => admin.fetchTopicOffsets(topic));
      await guarded(() => admin.setOffsets({ groupId, topic, partitions: marks.map((m) => ({ partition: m.partition, offset: m.low })) }));
    },
    async listGroups() {
      const { groups } = await guarded(() => admin.listGroups());
      return groups.map((g) => ({ groupId: g.groupId, protocolType: g.protocolType }));
    },
    async describeGroups(groupIds) {
      const { groups } = await guarded(() => admin.describeGroups(groupIds));
      return groups.map((g) => ({
        groupId: g.groupId,
        state: g.state,
        members: g.members.map((m) => ({
          memberId: m.memberId,
          clientId: m.clientId,
          assignment: m.memberAssignment.length ? (AssignerProtocol.MemberAssignment.decode(m.memberAssignment)?.assignment ?? {}) : {},
        })),
      }));
    },
    deleteGroups: async (groupIds) => {
      await guarded(() => admin.deleteGroups(groupIds));
    },
    async brokerCount() {
      const cluster = await metadataCall(() => admin.describeCluster());
      return cluster.brokers.length;
    },
  };
}

/** A KafkaClient backed by kafkajs. */
export function createKafkajsClient(opts: KafkaClientOptions, logger: Logger): KafkaClient {
  const kafka = new Kafka({
    clientId: opts.clientId,
    brokers: opts.brokers,
    logLevel: kafkaLogLevel(logger),
    logCreator: pinoLogCreator(logger),
    ...(opts.retry ? { retry: opts.retry } : {}),
    ...(opts.connectionTimeoutMs ? { connectionTimeout: opts.connectionTimeoutMs } : {}),
    ...(opts.requestTimeoutMs ? { requestTimeout: opts.requestTimeoutMs } : {}),
  });
  return {
    producer: (producerOpts = {}) => createProducer(kafka, producerOpts),
    consumer: (consumerOpts) => createGroupConsumer(kafka, logger, consumerOpts),
    admin: () => createAdmin(kafka),
  };
}
