/**
 * Reading records for the topic inspector and the dead-letter pages, through the redrive's DLQ
 * source (scripts/redrive/source-dlq.ts): a throwaway consumer group that never commits, reads a
 * fixed offset range and is deleted afterwards, so no pipeline group's offsets move.
 */
import { randomUUID } from 'node:crypto';
import type { ApplicationSubmitted } from '../../lib/application.ts';
import { HEADER, headerInt, type HeaderMap } from '../../lib/headers.ts';
import { kafkaError, withAdmin, type KafkaClient } from '../../lib/kafka/index.ts';
import type { Logger } from '../../lib/logger.ts';
import { existingTopics } from '../../lib/topics.ts';
import type { EventCodec } from '../../lib/serde.ts';
import type { RedriveFilters } from '../../scripts/redrive/filters.ts';
import { UNDECODABLE } from '../../scripts/redrive/redrive.ts';
import type { DeadLetter } from '../../scripts/redrive/source.ts';
import { createDlqSource } from '../../scripts/redrive/source-dlq.ts';

export const noFilters = (): RedriveFilters => ({ companies: [], platforms: [], errorCodes: [], since: undefined, until: undefined, applicationIds: [], partitions: [], offsets: undefined });

export interface ReadOptions {
  kafka: KafkaClient;
  topic: string;
  filters: RedriveFilters;
  logger: Logger;
  /** Stop after this many records (the page says the list was cut). */
  max: number;
  stallTimeoutMs?: number;
}

/** Records in the filters' coordinate range (partitions, offsets, since), at most `max`. */
export async function readRecords(o: ReadOptions): Promise<{ records: DeadLetter[]; truncated: boolean }> {
  const source = createDlqSource({ kafka: o.kafka, topic: o.topic, filters: o.filters, groupId: `ats-relay.console.${randomUUID()}`, logger: o.logger, stallTimeoutMs: o.stallTimeoutMs ?? 15_000 });
  const records: DeadLetter[] = [];
  const stop = new AbortController();
  let truncated = false;
  try {
    const { total } = await source.plan();
    if (total === 0) return { records, truncated };
    await source.read(async (r) => {
      if (records.length >= o.max) {
        truncated = true;
        stop.abort();
        return;
      }
      records.push(r);
    }, stop.signal);
  } catch (err) {
    throw kafkaError(err, `Kafka unreachable or topic unreadable (${o.topic})`, { topic: o.topic });
  } finally {
    await source.close();
  }
  records.sort((a, b) => a.partition - b.partition || Number(a.offset) - Number(b.offset));
  return { records, truncated };
}

export type Decoded = { ok: true; value: ApplicationSubmitted } | { ok: false; reason: string };

export async function decodeValue(codec: EventCodec, value: Buffer | null): Promise<Decoded> {
  if (!value || value.length === 0) return { ok: false, reason: 'empty value (tombstone)' };
  try {
    return { ok: true, value: await codec.decode(value) };
  } catch (err) {
    return { ok: false, reason: (err as Error).message ?? String(err) };
  }
}

export interface DeadLetterRow {
  partition: number;
  offset: string;
  deadAt: number;
  day: string;
  key: string | null;
  applicationId: string | undefined;
  companyId: string;
  platform: string;
  errorCode: string;
  errorMessage: string;
  redriveCount: number;
}

export async function deadLetterRows(records: DeadLetter[], codec: EventCodec): Promise<DeadLetterRow[]> {
  const out: DeadLetterRow[] = [];
  for (const r of records) {
    const d = await decodeValue(codec, r.value);
    const h: HeaderMap = r.headers;
    const deadAt = Number(r.timestamp);
    out.push({
      partition: r.partition,
      offset: r.offset,
      deadAt,
      day: new Date(deadAt).toISOString().slice(0, 10),
      key: r.key ? r.key.toString('utf8') : null,
      applicationId: d.ok ? d.value.applicationId : undefined,
      companyId: d.ok ? d.value.companyId : UNDECODABLE,
      platform: d.ok ? d.value.platform : UNDECODABLE,
      errorCode: h[HEADER.errorCode] ?? '-',
      errorMessage: h[HEADER.errorMessage] ?? '',
      redriveCount: Math.max(0, headerInt(h, HEADER.redriveCount) ?? 0),
    });
  }
  return out;
}

export interface DeadLetterGroup {
  companyId: string;
  platform: string;
  errorCode: string;
  day: string;
  count: number;
  first: number;
  last: number;
}

/** By company, platform, error code and UTC day of dead-lettering; biggest first. */
export function groupDeadLetters(rows: DeadLetterRow[]): DeadLetterGroup[] {
  const groups = new Map<string, DeadLetterGroup>();
  for (const r of rows) {
    const k = [r.companyId, r.platform, r.errorCode, r.day].join('\u0000');
    const g = groups.get(k) ?? { companyId: r.companyId, platform: r.platform, errorCode: r.errorCode, day: r.day, count: 0, first: r.deadAt, last: r.deadAt };
    g.count++;
    g.first = Math.min(g.first, r.deadAt);
    g.last = Math.max(g.last, r.deadAt);
    groups.set(k, g);
  }
  return [...groups.values()].sort((a, b) => b.day.localeCompare(a.day) || b.count - a.count || a.companyId.localeCompare(b.companyId));
}

/** Partitions and watermarks of a topic, for the inspector's pickers and "newest N". */
export async function topicWatermarks(kafka: KafkaClient, topic: string): Promise<Array<{ partition: number; low: number; high: number }> | null> {
  try {
    return await withAdmin(kafka, async (admin) => {
      if (!(await existingTopics(admin, [topic])).has(topic)) return null;
      return (await admin.fetchTopicOffsets(topic)).map((w) => ({ partition: w.partition, low: Number(w.low), high: Number(w.high) })).sort((a, b) => a.partition - b.partition);
    });
  } catch (err) {
    throw kafkaError(err, 'Kafka unreachable', { topic });
  }
}
