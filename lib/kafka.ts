/**
 * The one thin adapter over kafkajs. Everything else builds clients here and imports the few Kafka
 * types it needs from here, so a swap to @confluentinc/kafka-javascript or @platformatic/kafka
 * touches this file (and lib/topics.ts), not the producers and consumers.
 *
 * kafkajs logs go to pino (namespace and broker fields kept, level mapped); errors leave through
 * `kafkaError()` as RelayError with kafkajs' own `retriable` verdict.
 */
import kafkajs, {
  Kafka,
  logLevel,
  Partitioners,
  type Admin,
  type Consumer,
  type ConsumerConfig,
  type EachBatchHandler,
  type IHeaders,
  type LogEntry,
  type Message,
  type Producer,
  type RecordMetadata,
  type RetryOptions,
} from 'kafkajs';
import type { Config } from './config.ts';
import { RelayError } from './errors.ts';
import type { Logger } from './logger.ts';

// Not visible to Node's named-export detection for this CommonJS package; read it off the default export.
const { ConfigResourceTypes, AssignerProtocol } = kafkajs;
export { ConfigResourceTypes };
export type { Admin, Consumer, IHeaders, Kafka, Message, Producer, RecordMetadata, RetryOptions };

export interface KafkaOptions {
  /** Suffix of the client id (`<clientId>-<suffix>`), e.g. the process name. */
  clientIdSuffix?: string;
  /** Connection-level retries (connect, metadata, admin calls). Defaults: kafkajs' (5 retries, ≈10 s). */
  retry?: RetryOptions;
  connectionTimeoutMs?: number;
  requestTimeoutMs?: number;
}

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
 * kafkajs logs every error response at ERROR before it retries: a topic created a moment ago
 * answers "does not host this topic-partition" until its leader is elected. The caller sees the
 * error if the retries run out; the log line alone only alarms whoever reads it (the demo's first run).
 */
const RETRIED_RESPONSE_ERRORS = ['This server does not host this topic-partition', 'There is no leader for this topic-partition as we are in the middle of a leadership election'];
function isRetriedResponseError(namespace: string, extra: Record<string, unknown>): boolean {
  return namespace === 'Connection' && RETRIED_RESPONSE_ERRORS.includes(String(extra.error));
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
      const pinoLevel = EXPECTED_WARNINGS.includes(message) || isRetriedResponseError(namespace, extra) ? 'debug' : (PINO_LEVEL[level] ?? 'info');
      logger[pinoLevel]({ namespace, ...extra }, message);
    };
}

export function createKafka(kafka: Config['kafka'], logger: Logger, opts: KafkaOptions = {}): Kafka {
  return new Kafka({
    clientId: opts.clientIdSuffix ? `${kafka.clientId}-${opts.clientIdSuffix}` : kafka.clientId,
    brokers: kafka.brokers,
    logLevel: kafkaLogLevel(logger),
    logCreator: pinoLogCreator(logger),
    ...(opts.retry ? { retry: opts.retry } : {}),
    ...(opts.connectionTimeoutMs ? { connectionTimeout: opts.connectionTimeoutMs } : {}),
    ...(opts.requestTimeoutMs ? { requestTimeout: opts.requestTimeoutMs } : {}),
  });
}

export interface ProducerOptions {
  /** Idempotent producer (default true): no duplicates or reordering from the client's own retries. */
  idempotent?: boolean;
  /**
   * Retries of one send before it fails with a retriable error. Bounded by default (8 tries with
   * backoff up to 5 s, about 25 s in all) so a broker outage surfaces instead of hanging the caller.
   */
  retry?: RetryOptions;
}

export const DEFAULT_SEND_RETRY: RetryOptions = { retries: 8, initialRetryTime: 300, maxRetryTime: 5_000 };

/**
 * A producer for events whose per-key order matters: idempotent, one request in flight per broker
 * (so retries cannot reorder), Java-compatible murmur2 partitioning (same key → same partition as
 * any other client). Sends must pass `acks: ACKS_ALL`.
 *
 * After a failed send the idempotent session is replaced before the next one. kafkajs rolls a
 * partition's sequence number back when a produce request fails — also when the broker did write
 * the batch and only the answer was lost (a broker SIGKILLed mid-request) — so the next batch goes
 * out with a sequence the broker already holds, is acknowledged as a duplicate and never written:
 * acknowledged records lost (found by the chaos suite's `broker` scenario). A new producer id starts
 * its sequences afresh; the caller's retry of the failed batch may then write it twice, which the
 * event ids and the delivery log absorb (at least once, never lost).
 */
export function createProducer(kafka: Kafka, opts: ProducerOptions = {}): Producer {
  const make = (): Producer =>
    kafka.producer({
      idempotent: opts.idempotent ?? true,
      maxInFlightRequests: 1,
      createPartitioner: recordingPartitioner,
      retry: opts.retry ?? DEFAULT_SEND_RETRY,
    });
  if (opts.idempotent === false) return make();
  let current = make();
  let connected = false;
  let poisoned = false;
  let renewing: Promise<void> | undefined;
  const renew = async (): Promise<void> => {
    const old = current;
    current = make();
    await old.disconnect().catch(() => undefined);
    await current.connect();
    poisoned = false;
  };
  async function guarded<T>(fn: (p: Producer) => Promise<T>): Promise<T> {
    if (poisoned && connected) {
      renewing ??= renew().finally(() => (renewing = undefined));
      await renewing;
    }
    const p = current;
    try {
      return await fn(p);
    } catch (err) {
      if (p === current) poisoned = true;
      throw err;
    }
  }
  return {
    async connect() {
      connected = true;
      await current.connect();
    },
    async disconnect() {
      connected = false;
      await renewing?.catch(() => undefined);
      await current.disconnect();
    },
    send: (record) => guarded((p) => p.send(record)),
    sendBatch: (batch) => guarded((p) => p.sendBatch(batch)),
    isIdempotent: () => current.isIdempotent(),
    get events() {
      return current.events;
    },
    on: (...args: Parameters<Producer['on']>) => current.on(...args),
    transaction: () => current.transaction(),
    logger: () => current.logger(),
  };
}

/** The partition the producer's partitioner chose for each message object sent so far. */
const chosenPartition = new WeakMap<Message, number>();

/** kafkajs' default (murmur2) partitioner, noting its choice so a sender can tell each message's offset. */
function recordingPartitioner(): ReturnType<typeof Partitioners.DefaultPartitioner> {
  const choose = Partitioners.DefaultPartitioner();
  return (args) => {
    const partition = choose(args);
    chosenPartition.set(args.message, partition);
    return partition;
  };
}

/** The partition a producer of createProducer() sent `message` to (the same object), once sent. */
export function partitionOf(message: Message): number | undefined {
  return chosenPartition.get(message);
}

/** acks = -1: the leader waits for the full in-sync replica set. Required by the idempotent producer. */
export const ACKS_ALL = -1;

export function createConsumer(kafka: Kafka, config: ConsumerConfig): Consumer {
  return kafka.consumer(config);
}

export interface GroupConsumerOptions {
  groupId: string;
  sessionTimeoutMs: number;
  /** Longest a fetch waits for data; bounds how soon a paused or idle consumer notices news. */
  maxWaitTimeMs: number;
}

/**
 * The consumer every ats-relay role uses: handlers return at once (work continues outside
 * eachBatch), so heartbeats keep the member alive however slow the work, and the session can be
 * short: a SIGKILLed member's partitions move on after `sessionTimeoutMs` (6 s by default, the
 * broker's minimum), not the 30 s of kafkajs' default. kafkajs heartbeats from its fetch loop
 * (every fetch waits at most `maxWaitTimeMs`), once a second: a survivor learns of a rebalance a
 * second after the broker starts it, and a live member misses six before it is taken for dead.
 * Hand-over after a member's SIGKILL ≈ session + 1 s (measured by `npm run chaos -- --scenario handover`).
 * Fetches are generous because accepting records is cheap and full partitions pause themselves.
 */
export function createGroupConsumer(kafka: Kafka, opts: GroupConsumerOptions): Consumer {
  return kafka.consumer({
    groupId: opts.groupId,
    sessionTimeout: opts.sessionTimeoutMs,
    heartbeatInterval: Math.min(1_000, Math.floor(opts.sessionTimeoutMs / 3)),
    maxBytesPerPartition: 262_144,
    maxWaitTimeInMs: opts.maxWaitTimeMs,
  });
}

/** One string per topic-partition, for maps keyed by both. */
export const tpKey = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

/** The topic and partition of a tpKey. */
export function fromTpKey(key: string): { topic: string; partition: number } {
  const cut = key.lastIndexOf('\u0000');
  return { topic: key.slice(0, cut), partition: Number(key.slice(cut + 1)) };
}

/** A group member's assignment as tpKeys. */
export function assignedKeys(assignment: Record<string, number[]>): Set<string> {
  const keys = new Set<string>();
  for (const [topic, partitions] of Object.entries(assignment)) for (const p of partitions) keys.add(tpKey(topic, p));
  return keys;
}

export interface ManualCommitRunOptions {
  topics: readonly string[];
  /** Where a group without committed offsets starts (default: the beginning). */
  fromBeginning?: boolean;
  logger: Logger;
  /** After every group join, with this member's partitions per topic. */
  onJoin(assignment: Record<string, number[]>): void;
  /**
   * The client crashed. `fatal`: it gave up (a non-retriable error, or more than `maxRestarts`
   * crashes within `restartWindowMs`) and will not fetch again: the owner must close and exit
   * non-zero so its supervisor restarts it. Otherwise kafkajs rejoins by itself (`onJoin` follows).
   */
  onCrash(err: Error, fatal: boolean): void;
  /** Restarts tolerated within `restartWindowMs` before a crash counts as fatal (default 3). */
  maxRestarts?: number;
  restartWindowMs?: number;
  eachBatch: EachBatchHandler;
}

/**
 * Join the group and consume with offsets in the caller's hands: nothing auto-committed or
 * auto-resolved, one partition's batch at a time. Every ats-relay consumer commits only after a
 * record's outcome is durable, so this is the one way they run.
 */
export async function runManualCommit(consumer: Consumer, opts: ManualCommitRunOptions): Promise<void> {
  const maxRestarts = opts.maxRestarts ?? 3;
  const windowMs = opts.restartWindowMs ?? 120_000;
  const restarts: number[] = [];
  let gaveUp = false;
  consumer.on(consumer.events.GROUP_JOIN, (e) => opts.onJoin(e.payload.memberAssignment));
  consumer.on(consumer.events.CRASH, (e) => {
    if (gaveUp) return;
    const now = Date.now();
    while (restarts.length > 0 && restarts[0]! < now - windowMs) restarts.shift();
    restarts.push(now);
    const fatal = !e.payload.restart || restarts.length > maxRestarts;
    const err = e.payload.error;
    opts.logger.error({ err, restart: e.payload.restart, crashesInWindow: restarts.length, fatal }, fatal ? 'consumer crashed for good' : 'consumer crashed; the client restarts it');
    if (fatal) {
      gaveUp = true;
      // A restart may be scheduled already: disconnecting cancels it, so the member stays gone.
      if (e.payload.restart) consumer.disconnect().catch(() => undefined);
    }
    opts.onCrash(err, fatal);
  });
  await consumer.connect();
  for (const topic of opts.topics) await consumer.subscribe({ topic, fromBeginning: opts.fromBeginning ?? true });
  await consumer.run({ autoCommit: false, eachBatchAutoResolve: false, partitionsConsumedConcurrently: 1, eachBatch: opts.eachBatch });
}

/** A promise that rejects with the first fatal error handed to `fail`, for owners to race against their work. */
export function crashSignal(): { failed: Promise<never>; fail(err: Error): void } {
  let fail: (err: Error) => void = () => undefined;
  const failed = new Promise<never>((_, reject) => (fail = reject));
  failed.catch(() => undefined); // owners that never look at it must not see an unhandled rejection
  return { failed, fail };
}

export async function withAdmin<T>(kafka: Kafka, fn: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect();
  }
}

export interface GroupMember {
  memberId: string;
  clientId: string;
  /** Partitions per topic the group leader assigned to this member in the current generation. */
  assignment: Record<string, number[]>;
}

/** A consumer group's state and who owns what (chaos hand-over timing, operators' tooling). */
export async function describeGroup(admin: Admin, groupId: string): Promise<{ state: string; members: GroupMember[] }> {
  const { groups } = await admin.describeGroups([groupId]);
  const group = groups[0];
  if (!group) return { state: 'Dead', members: [] };
  return {
    state: group.state,
    members: group.members.map((m) => ({
      memberId: m.memberId,
      clientId: m.clientId,
      // Empty while a rebalance is under way (no assignment synced yet).
      assignment: m.memberAssignment.length ? (AssignerProtocol.MemberAssignment.decode(m.memberAssignment)?.assignment ?? {}) : {},
    })),
  };
}

export type KafkaErrorCode = 'kafka_unavailable' | 'kafka_rejected';

/**
 * A kafkajs failure as a RelayError: `kafka_unavailable` (retriable: broker down, timeouts, leader
 * changes, retries exhausted) or `kafka_rejected` (the broker refused the request for good, e.g.
 * a record too large or an unknown topic with auto-creation off).
 */
export function kafkaError(err: unknown, message: string, context: Record<string, unknown> = {}): RelayError<KafkaErrorCode> {
  if (err instanceof RelayError) return err as RelayError<KafkaErrorCode>;
  const e = err as { name?: string; message?: string; retriable?: boolean; type?: string };
  // Retries exhausted on a retriable error is still retriable for the caller (a later attempt may work).
  const retriable = e.retriable !== false || e.name === 'KafkaJSNumberOfRetriesExceeded' || e.name === 'KafkaJSConnectionError';
  return new RelayError(retriable ? 'kafka_unavailable' : 'kafka_rejected', `${message}: ${e.message ?? String(err)}`, {
    retriable,
    cause: err,
    context: { ...context, kafkaError: e.type ?? e.name },
  });
}
