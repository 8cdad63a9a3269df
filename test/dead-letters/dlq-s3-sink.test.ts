/**
 * The DLQ → S3 sink on the real stack (Kafka, registry, S3Mock): every dead letter archived exactly
 * once, byte-exact, and nothing committed before it is stored — across S3 outages, SIGTERM and SIGKILL.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { createDlqS3Sink, type DlqS3Sink } from '../../consumers/dlq-s3-sink/index.ts';
import { archiveDate, archiveKey, buildArchiveObject } from '../../lib/dlq-archive.ts';
import { HEADER } from '../../lib/headers.ts';
import { withAdmin, type OutboundRecord } from '../../lib/kafka/index.ts';
import { uniqueName } from '../support/config.ts';
import { committedOffsets, exited, freePort, readArchive, spawnConsumer, startDeadLetterStack, waitFor, type ArchiveObject, type DeadLetterSpec, type DeadLetterStack } from './support.ts';

const stacks: DeadLetterStack[] = [];
const sinks: DlqS3Sink[] = [];

async function stack(overrides: Record<string, string> = {}): Promise<DeadLetterStack> {
  const s = await startDeadLetterStack(overrides);
  stacks.push(s);
  return s;
}

function sink(s: Pick<DeadLetterStack, 'config' | 'logger'>, groupId: string, options: Parameters<typeof createDlqS3Sink>[0]['options'] = {}, config = s.config): DlqS3Sink {
  const c = createDlqS3Sink({ config, logger: s.logger, options: { groupId, initialBackoffMs: 200, maxBackoffMs: 1_000, drainTimeoutMs: 5_000, ...options } });
  sinks.push(c);
  return c;
}

async function highWatermarks(s: DeadLetterStack): Promise<Map<number, number>> {
  const offsets = await withAdmin(s.kafka, (admin) => admin.fetchTopicOffsets(s.config.topics.dlq));
  return new Map(offsets.map((o) => [o.partition, Number(o.high)]));
}

/** True once the group's committed offset reached the high watermark on every partition. */
async function fullyCommitted(s: DeadLetterStack, groupId: string): Promise<boolean> {
  const [high, committed] = await Promise.all([highWatermarks(s), committedOffsets(s.kafka, groupId, s.config.topics.dlq)]);
  return [...high].every(([p, h]) => h === 0 || committed.get(p) === h);
}

/** Every offset of every partition appears in exactly one object, and each object's key matches its lines. */
function expectExactlyOnce(objects: ArchiveObject[], high: Map<number, number>): void {
  const seen = new Map<string, string>();
  for (const o of objects) {
    expect(o.records.length).toBeGreaterThan(0);
    expect(o.records[0]!.offset).toBe(o.parts.firstOffset);
    expect(o.records[o.records.length - 1]!.offset).toBe(o.parts.lastOffset);
    for (const r of o.records) {
      expect(r.partition).toBe(o.parts.partition);
      const id = `${r.partition}:${r.offset}`;
      expect(seen.get(id), `offset ${id} in ${o.key} and ${seen.get(id)}`).toBeUndefined();
      seen.set(id, o.key);
    }
  }
  for (const [p, h] of high) for (let off = 0; off < h; off++) expect(seen.has(`${p}:${off}`), `offset ${p}:${off} archived`).toBe(true);
  expect(seen.size).toBe([...high.values()].reduce((a, b) => a + b, 0));
}

afterAll(async () => {
  await Promise.all(sinks.map((s) => s.close()));
  await Promise.all(stacks.map((s) => s.close()));
});

describe('DLQ → S3 sink', () => {
  it('archives N dead letters into objects whose lines add up to N, byte-exact and decodable', async () => {
    const s = await stack();
    const items = Array.from({ length: 137 }, (_, i): DeadLetterSpec => ({ event: s.event(i % 2 ? 'company-a' : 'company-b'), code: i % 3 ? 'unavailable' : 'auth_failed', status: i % 3 ? 503 : 401 }));
    const messages: OutboundRecord[] = await s.deadLetters(items);
    const garbage = [
      { key: 'not-avro', value: Buffer.from('{"this":"is not avro"}'), headers: { [HEADER.errorCode]: 'decode_failed' } },
      { key: 'binary', value: Buffer.from([0, 0, 0, 0, 99, 0xff, 0xfe]), headers: { [HEADER.errorCode]: 'decode_failed', 'raw-bin': Buffer.from([0xc3, 0x28]) } },
    ];
    await s.publish([...messages, ...garbage]);

    const groupId = uniqueName('dlq-s3');
    const c = sink(s, groupId, { maxRecords: 20, maxAgeMs: 500 });
    await c.start();
    await waitFor('all offsets committed', () => fullyCommitted(s, groupId), 40_000);

    const objects = await readArchive(s.s3, s.config);
    const high = await highWatermarks(s);
    expectExactlyOnce(objects, high);
    const lines = objects.flatMap((o) => o.records);
    expect(lines).toHaveLength(139);
    expect(objects.every((o) => o.records.length <= 20)).toBe(true);

    const byKey = new Map(lines.map((l) => [l.key?.toString(), l]));
    for (const m of messages) {
      const line = byKey.get(String(m.key))!;
      expect(line.value!.equals(m.value as Buffer)).toBe(true); // byte-exact for a redrive
      expect(line.headers).toEqual(m.headers);
      expect((line.decoded as { applicationId: string }).applicationId).toBe(m.key);
      expect(line.decodeError).toBeUndefined();
      expect(Number(line.timestamp)).toBeGreaterThan(0);
    }
    for (const g of garbage) {
      const line = byKey.get(g.key)!;
      expect(line.decoded).toBeNull();
      expect(line.decodeError).toMatch(/not Confluent-framed Avro|schema id|undecodable/);
      expect(line.value!.equals(g.value)).toBe(true);
    }
    // Non-UTF-8 header bytes survive through rawHeaders.
    expect(byKey.get('binary')!.rawHeaders['raw-bin']).toEqual(Buffer.from([0xc3, 0x28]));
    // Keys are <prefix>/<dlq topic>/dt=<date of first record>/partition=<p>/<first>-<last>.jsonl.gz
    for (const o of objects) {
      expect(o.key).toBe(archiveKey({ ...o.parts }));
      expect(o.parts.topic).toBe(s.config.topics.dlq);
      expect(o.parts.date).toBe(archiveDate(o.records[0]!.timestamp));
    }
    expect(c.metrics.registry.getSingleMetric('ats_relay_dlq_archived_records_total')).toBeTruthy();
    expect((await c.metrics.archivedRecords.get()).values[0]!.value).toBe(139);
  });

  it('with S3 down commits nothing and pauses at its buffer bound; once S3 is back everything is written exactly once', async () => {
    const s = await stack();
    const messages = await s.deadLetters(Array.from({ length: 60 }, () => ({ event: s.event('company-a'), code: 'unavailable' })));
    await s.publish(messages);
    const groupId = uniqueName('dlq-s3');
    const down = { ...s.config, s3: { ...s.config.s3, endpoint: `http://127.0.0.1:${await freePort()}` } };
    const c1 = sink(s, groupId, { maxRecords: 5, maxAgeMs: 200 }, down);
    await c1.start();
    await waitFor('S3 failures', async () => ((await c1.metrics.s3Failures.get()).values.reduce((n, v) => n + v.value, 0) >= 3 ? true : undefined), 30_000);
    await new Promise((r) => setTimeout(r, 1_000));
    const committed = await committedOffsets(s.kafka, groupId, s.config.topics.dlq);
    expect([...committed.values()].every((o) => o === -1)).toBe(true);
    // Bounded memory: at most one batch being written and one full batch per partition.
    expect((await c1.metrics.bufferedRecords.get()).values[0]!.value).toBeLessThanOrEqual(3 * 2 * 5);
    await c1.close();
    expect([...(await committedOffsets(s.kafka, groupId, s.config.topics.dlq)).values()].every((o) => o === -1)).toBe(true);
    expect(await readArchive(s.s3, s.config)).toHaveLength(0);

    const c2 = sink(s, groupId, { maxRecords: 5, maxAgeMs: 200 });
    await c2.start();
    await waitFor('all offsets committed', () => fullyCommitted(s, groupId), 30_000);
    expectExactlyOnce(await readArchive(s.s3, s.config), await highWatermarks(s));
  });

  it('replaces an uncommitted object of an earlier run that started at the same offset but ended elsewhere', async () => {
    const s = await stack();
    const messages = (await s.deadLetters(Array.from({ length: 40 }, () => ({ event: s.event('company-a'), code: 'unavailable' })))).map((m) => ({ ...m, partition: 0 }));
    await s.publish(messages);
    // What a crash between "object stored" and "offsets committed" leaves behind, with another cut (0-25).
    const stale = archiveKey({ prefix: s.config.s3.prefix, topic: s.config.topics.dlq, date: archiveDate(Date.now()), partition: 0, firstOffset: '0', lastOffset: '25' });
    await s.s3.send(new PutObjectCommand({ Bucket: s.config.s3.bucket, Key: stale, Body: buildArchiveObject(['{"v":1}']) }));
    const groupId = uniqueName('dlq-s3');
    const c = sink(s, groupId, { maxRecords: 10, maxAgeMs: 300 });
    await c.start();
    await waitFor('all offsets committed', () => fullyCommitted(s, groupId), 30_000);
    const objects = await readArchive(s.s3, s.config);
    expect(objects.map((o) => `${o.parts.firstOffset}-${o.parts.lastOffset}`).sort()).toEqual(['0-9', '10-19', '20-29', '30-39']);
    expectExactlyOnce(objects, await highWatermarks(s));
    expect((await c.metrics.staleObjectsRemoved.get()).values[0]!.value).toBe(1);
  });

  it('killed with SIGKILL mid-flush and restarted with other limits: every offset in exactly one object', async () => {
    const s = await stack();
    const messages = await s.deadLetters(Array.from({ length: 600 }, (_, i) => ({ event: s.event(`company-${i % 5}`), code: 'unavailable' })));
    await s.publish(messages);
    const groupId = uniqueName('dlq-s3');
    const child = spawnConsumer(s.config, 'dlq-s3', { DLQ_ARCHIVE_MAX_RECORDS: '7', DLQ_ARCHIVE_MAX_AGE_MS: '60000' }, ['--group', groupId]);
    try {
      await waitFor('some objects written', async () => (await readArchive(s.s3, s.config)).length >= 6, 40_000, 50);
    } finally {
      child.kill('SIGKILL');
    }
    await exited(child);
    const before = await readArchive(s.s3, s.config);
    expect(before.length).toBeGreaterThan(0);
    expect(await fullyCommitted(s, groupId)).toBe(false); // killed before the end

    // Different limits: a rewrite from the committed offset cuts its batches elsewhere.
    const c = sink(s, groupId, { maxRecords: 11, maxAgeMs: 300 });
    await c.start();
    await waitFor('all offsets committed', () => fullyCommitted(s, groupId), 40_000);
    const after = await readArchive(s.s3, s.config);
    expectExactlyOnce(after, await highWatermarks(s));
    expect(after.flatMap((o) => o.records)).toHaveLength(600);
  }, 120_000); // the killed member holds its partitions until its session times out (30 s)

  it('on SIGTERM writes what it buffered, commits and exits 0', async () => {
    const s = await stack();
    await s.publish(await s.deadLetters(Array.from({ length: 25 }, () => ({ event: s.event('company-a'), code: 'unavailable' }))));
    const groupId = uniqueName('dlq-s3');
    // Limits far away: without the shutdown flush nothing would be written for a minute.
    const child = spawnConsumer(s.config, 'dlq-s3', { DLQ_ARCHIVE_MAX_RECORDS: '1000', DLQ_ARCHIVE_MAX_AGE_MS: '60000', LOG_LEVEL: 'info' }, ['--group', groupId]);
    let log = '';
    child.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    await waitFor('joined and fetched', async () => log.includes('joined consumer group'), 30_000);
    // Each key once per line: the group is bound by the role, not again by the runtime below it.
    const joined = log.split('\n').find((l) => l.includes('joined consumer group'))!;
    expect(joined.match(/"group":/g)).toHaveLength(1);
    expect(JSON.parse(joined)).toMatchObject({ group: groupId, component: 'dlq-s3-sink' });
    await new Promise((r) => setTimeout(r, 2_000));
    expect(await readArchive(s.s3, s.config)).toHaveLength(0);
    child.kill('SIGTERM');
    expect(await exited(child)).toBe(0);
    expect(await fullyCommitted(s, groupId)).toBe(true);
    expectExactlyOnce(await readArchive(s.s3, s.config), await highWatermarks(s));
  });
});
