/**
 * Kafka for every ats-relay component: the port's types (port.ts), the client built from config,
 * and small helpers. Everything outside lib/kafka/ imports from here, never from an adapter or a
 * client library; the adapter behind `createKafka` is the only file that knows kafkajs.
 */
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { createKafkajsClient } from './kafkajs-adapter.ts';
import type { Admin, ConsumedRecord, GroupMember, KafkaClient, KafkaClientOptions, Producer, ProducerOptions, RetryPolicy } from './port.ts';

export * from './port.ts';
export { KafkaClientError, brokerErrorOf, kafkaError, type KafkaErrorCode } from './errors.ts';
export { murmur2, partitionForKey } from './partitioner.ts';

/**
 * Every adapter that implements the port, by name. test/kafka/port.test.ts runs its conformance
 * suite against each; a second client library joins here once it passes.
 */
export const KAFKA_ADAPTERS: Record<string, (opts: KafkaClientOptions, logger: Logger) => KafkaClient> = {
  kafkajs: createKafkajsClient,
};

export interface KafkaOptions {
  /** Suffix of the client id (`<clientId>-<suffix>`), e.g. the process name. */
  clientIdSuffix?: string;
  /** Connection-level retries (connect, metadata, admin calls). Default: the client's (5 retries, ≈10 s). */
  retry?: RetryPolicy;
  connectionTimeoutMs?: number;
  requestTimeoutMs?: number;
}

export function createKafka(kafka: Config['kafka'], logger: Logger, opts: KafkaOptions = {}): KafkaClient {
  return createKafkajsClient(
    {
      clientId: opts.clientIdSuffix ? `${kafka.clientId}-${opts.clientIdSuffix}` : kafka.clientId,
      brokers: kafka.brokers,
      ...(opts.retry ? { retry: opts.retry } : {}),
      ...(opts.connectionTimeoutMs ? { connectionTimeoutMs: opts.connectionTimeoutMs } : {}),
      ...(opts.requestTimeoutMs ? { requestTimeoutMs: opts.requestTimeoutMs } : {}),
    },
    logger,
  );
}

export const DEFAULT_SEND_RETRY: RetryPolicy = { retries: 8, initialRetryTime: 300, maxRetryTime: 5_000 };

/**
 * A producer for events whose per-key order matters: idempotent, one request in flight per broker
 * (so retries cannot reorder), murmur2 partitioning as the Java client does, acks from all in-sync
 * replicas by default. Sends fail after bounded retries (DEFAULT_SEND_RETRY) with a retriable error.
 *
 * After a failed send the idempotent session is replaced before the next one. kafkajs rolls a
 * partition's sequence number back when a produce request fails — also when the broker did write
 * the batch and only the answer was lost (a broker SIGKILLed mid-request) — so the next batch goes
 * out with a sequence the broker already holds, is acknowledged as a duplicate and never written:
 * acknowledged records lost (found by the chaos suite's `broker` scenario). A new producer id starts
 * its sequences afresh, whatever the client; the caller's retry of the failed batch may then write
 * it twice, which the event ids and the delivery log absorb (at least once, never lost).
 */
export function createProducer(kafka: KafkaClient, opts: ProducerOptions = {}): Producer {
  const idempotent = opts.idempotent ?? true;
  const make = (): Producer => kafka.producer({ idempotent, retry: opts.retry ?? DEFAULT_SEND_RETRY });
  if (!idempotent) return make();
  let current = make();
  let connected = false;
  let poisoned = false;
  let renewing: Promise<void> | undefined;
  async function renew(): Promise<void> {
    const old = current;
    current = make();
    await old.disconnect().catch(() => undefined);
    await current.connect();
    poisoned = false;
  }
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
    send: (request) => guarded((p) => p.send(request)),
    sendBatch: (request) => guarded((p) => p.sendBatch(request)),
  };
}

/** A promise that rejects with the first fatal error handed to `fail`, for owners to race against their work. */
export function crashSignal(): { failed: Promise<never>; fail(err: Error): void } {
  let fail: (err: Error) => void = () => undefined;
  const failed = new Promise<never>((_, reject) => (fail = reject));
  failed.catch(() => undefined); // owners that never look at it must not see an unhandled rejection
  return { failed, fail };
}

/** A consumer group's state and who owns what (chaos hand-over timing, operators' tooling). */
export async function describeGroup(admin: Admin, groupId: string): Promise<{ state: string; members: GroupMember[] }> {
  const [group] = await admin.describeGroups([groupId]);
  return group ? { state: group.state, members: group.members } : { state: 'Dead', members: [] };
}

export async function withAdmin<T>(kafka: KafkaClient, fn: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect();
  }
}

export interface ScanOptions {
  /** A throwaway group of the caller's (nothing is committed; it holds no offsets afterwards). */
  groupId: string;
  /** Each record in partition order; answer true once the scan has what it wants. */
  each(record: ConsumedRecord, partition: number): boolean | void;
  timeoutMs: number;
  maxBytesPerPartition?: number;
}

/**
 * Read a topic from the beginning until `each` says done ('done') or the time is up ('timeout').
 * For tests and audits that look at what a topic holds; consumers use consumers/runtime.
 */
export async function scanTopic(kafka: KafkaClient, topic: string, opts: ScanOptions): Promise<'done' | 'timeout'> {
  const consumer = kafka.consumer({ groupId: opts.groupId, ...(opts.maxBytesPerPartition ? { maxBytesPerPartition: opts.maxBytesPerPartition } : {}) });
  let finished = false;
  try {
    return await new Promise<'done' | 'timeout'>((resolve, reject) => {
      const timer = setTimeout(() => resolve('timeout'), opts.timeoutMs);
      const done = (): void => {
        finished = true;
        clearTimeout(timer);
        resolve('done');
      };
      consumer
        .run({
          topics: [topic],
          fromBeginning: true,
          onBatch: async (batch) => {
            for (const record of batch.records) {
              if (finished) return;
              batch.resolveOffset(record.offset);
              if (opts.each(record, batch.partition) === true) done();
            }
          },
          onCrash: (err, fatal) => {
            if (fatal) reject(err);
          },
        })
        .catch(reject);
    });
  } finally {
    finished = true;
    await consumer.disconnect();
  }
}
