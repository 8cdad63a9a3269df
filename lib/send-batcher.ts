/**
 * Coalesces concurrent sends into one produce request. The idempotent producer keeps one request in
 * flight per broker, so callers sending one small message each would otherwise wait in line, one
 * round trip apiece. Here, whatever is queued while a request is in flight goes out together in the
 * next one (up to `maxRequestBytes`), and each caller learns its own messages' partitions and offsets.
 *
 * Order: messages leave in the order `send` was called, so per-key order holds as it would with one
 * send per call. A failed request fails every caller in it (each may retry: event ids make that safe).
 */
import { ACKS_ALL, kafkaError, type OutboundRecord, type Producer, type RecordPosition } from './kafka/index.ts';

export type { RecordPosition };

export interface SendBatcherOptions {
  /** The producer to send with (from lib/kafka/index.ts createProducer); resolved per request, so it may be replaced. */
  producer(): Promise<Producer>;
  /** Upper bound of one request's message bytes (keys + values + headers); default 512 KiB. */
  maxRequestBytes?: number;
  /** Called once per failed request, before its callers hear of it (e.g. to replace the producer). */
  onError?(err: unknown, producer: Producer | undefined): void | Promise<void>;
}

export interface SendBatcher {
  /** Resolves when the broker acked `messages` (acks=all), with each message's position, in order. */
  send(topic: string, messages: OutboundRecord[]): Promise<RecordPosition[]>;
}

interface Pending {
  topic: string;
  messages: OutboundRecord[];
  bytes: number;
  resolve(positions: RecordPosition[]): void;
  reject(err: unknown): void;
}

const DEFAULT_MAX_REQUEST_BYTES = 512 * 1024;

/** Estimated bytes of one record in a produce request; what request size budgets count. */
export function messageBytes(message: OutboundRecord): number {
  let bytes = 64; // record overhead (offsets, timestamps, lengths)
  if (message.key) bytes += message.key.length;
  if (message.value) bytes += message.value.length;
  const headers = message.headers;
  for (const name in headers) {
    const value = headers[name];
    bytes += name.length + (typeof value === 'string' || Buffer.isBuffer(value) ? value.length : 0);
  }
  return bytes;
}

export function createSendBatcher(opts: SendBatcherOptions): SendBatcher {
  const maxRequestBytes = opts.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
  const queue: Pending[] = [];
  /** A request is out; what is queued meanwhile waits for it. */
  let sending = false;

  /** The next request: queued sends in order, at least one, until the byte budget is spent. */
  function take(): Pending[] {
    const batch: Pending[] = [];
    let bytes = 0;
    while (queue.length && (batch.length === 0 || bytes + queue[0]!.bytes <= maxRequestBytes)) {
      const next = queue.shift()!;
      bytes += next.bytes;
      batch.push(next);
    }
    return batch;
  }

  async function sendRequest(batch: Pending[]): Promise<void> {
    let producer: Producer | undefined;
    try {
      producer = await opts.producer();
      // One entry per topic, messages in call order; positions come back in the same order.
      const byTopic = new Map<string, OutboundRecord[]>();
      for (const p of batch) {
        const list = byTopic.get(p.topic);
        if (list) list.push(...p.messages);
        else byTopic.set(p.topic, [...p.messages]);
      }
      const positions = await producer.sendBatch({ acks: ACKS_ALL, topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) });
      const cursor = new Map<string, number>();
      let start = 0;
      for (const [topic, messages] of byTopic) {
        cursor.set(topic, start);
        start += messages.length;
      }
      for (const p of batch) {
        const from = cursor.get(p.topic)!;
        cursor.set(p.topic, from + p.messages.length);
        p.resolve(positions.slice(from, from + p.messages.length));
      }
    } catch (err) {
      const error = kafkaError(err, 'send failed', { topics: [...new Set(batch.map((p) => p.topic))].join(',') });
      await Promise.resolve(opts.onError?.(error, producer)).catch(() => undefined);
      for (const p of batch) p.reject(error);
    }
  }

  /** A pump is scheduled for the next turn of the event loop. */
  let scheduled = false;

  /**
   * Requests start one event-loop turn after the first send (setImmediate), not at once: callers
   * resolved together by an ack send their next messages in the same turn, and starting at once
   * would send the first of them alone and queue the rest behind it — with closed-loop callers every
   * other request carried one message (issue 17: direct publish at 13 % of the raw producer).
   */
  function pump(): void {
    if (sending || scheduled || queue.length === 0) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      if (sending || queue.length === 0) return;
      sending = true;
      // sendRequest settles every caller itself and never rejects.
      void sendRequest(take()).finally(() => {
        sending = false;
        pump();
      });
    });
  }

  return {
    send(topic, messages) {
      return new Promise((resolve, reject) => {
        queue.push({ topic, messages, bytes: messages.reduce((n, m) => n + messageBytes(m), 0), resolve, reject });
        pump();
      });
    },
  };
}
