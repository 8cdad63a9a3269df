/**
 * Reading a topic back in tests: every record in all partitions up to the high watermarks seen at
 * the start, raw bytes kept, with a throwaway group that never commits.
 */
import type { RecordHeaders, KafkaClient } from '../../lib/kafka/index.ts';
import { scanTopic, withAdmin } from '../../lib/kafka/index.ts';
import { readHeaders, type HeaderMap } from '../../lib/headers.ts';
import { uniqueName } from './config.ts';

export interface RawRecord {
  partition: number;
  offset: string;
  timestamp: string;
  key: Buffer | null;
  value: Buffer | null;
  rawHeaders: RecordHeaders;
  headers: HeaderMap;
}

/** Every record in `topic` (all partitions), raw bytes kept, read without committing (a throwaway group). */
export async function readTopic(kafka: KafkaClient, topic: string): Promise<RawRecord[]> {
  const offsets = await withAdmin(kafka, (admin) => admin.fetchTopicOffsets(topic));
  const wanted = offsets.filter((o) => Number(o.high) > Number(o.low));
  if (wanted.length === 0) return [];
  const out: RawRecord[] = [];
  const remaining = new Map(wanted.map((o) => [o.partition, Number(o.high)]));
  const result = await scanTopic(kafka, topic, {
    groupId: uniqueName('test-reader'),
    timeoutMs: 20_000,
    each(record, partition) {
      if (Number(record.offset) >= (remaining.get(partition) ?? 0)) return remaining.size === 0;
      out.push({ partition, offset: record.offset, timestamp: record.timestamp, key: record.key, value: record.value, rawHeaders: record.headers, headers: readHeaders(record.headers) });
      if (Number(record.offset) + 1 >= (remaining.get(partition) ?? 0)) remaining.delete(partition);
      return remaining.size === 0;
    },
  });
  if (result === 'timeout') throw new Error(`timed out reading ${topic}`);
  return out.sort((a, b) => a.partition - b.partition || Number(a.offset) - Number(b.offset));
}

