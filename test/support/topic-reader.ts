/**
 * Reading a topic back in tests: every record in all partitions up to the high watermarks seen at
 * the start, raw bytes kept, with a throwaway group that never commits.
 */
import type { IHeaders, Kafka } from '../../lib/kafka.ts';
import { withAdmin } from '../../lib/kafka.ts';
import { readHeaders, type HeaderMap } from '../../lib/headers.ts';
import { uniqueName } from './config.ts';

export interface RawRecord {
  partition: number;
  offset: string;
  timestamp: string;
  key: Buffer | null;
  value: Buffer | null;
  rawHeaders: IHeaders;
  headers: HeaderMap;
}

/** Every record in `topic` (all partitions), raw bytes kept, read without committing (a throwaway group). */
export async function readTopic(kafka: Kafka, topic: string): Promise<RawRecord[]> {
  const offsets = await withAdmin(kafka, (admin) => admin.fetchTopicOffsets(topic));
  const wanted = offsets.filter((o) => Number(o.high) > Number(o.low));
  if (wanted.length === 0) return [];
  const consumer = kafka.consumer({ groupId: uniqueName('test-reader') });
  const out: RawRecord[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    const remaining = new Map(wanted.map((o) => [o.partition, Number(o.high)]));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out reading ${topic}`)), 20_000);
      void consumer.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          if (Number(message.offset) >= (remaining.get(partition) ?? 0)) return;
          out.push({
            partition,
            offset: message.offset,
            timestamp: message.timestamp,
            key: message.key,
            value: message.value,
            rawHeaders: message.headers ?? {},
            headers: readHeaders(message.headers),
          });
          if (Number(message.offset) + 1 >= (remaining.get(partition) ?? 0)) remaining.delete(partition);
          if (remaining.size === 0) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return out.sort((a, b) => a.partition - b.partition || Number(a.offset) - Number(b.offset));
}

