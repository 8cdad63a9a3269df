/**
 * `npm run redrive` on the real stack, run as a child process as an operator would: every filter,
 * dry run, loop guard, rate cap, S3 byte-exactness, other groups' offsets untouched, run history.
 */
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiveDate, archiveKey, buildArchiveObject, encodeArchiveLine } from '../../lib/dlq-archive.ts';
import { HEADER } from '../../lib/headers.ts';
import { withAdmin } from '../../lib/kafka.ts';
import { createRedriveRuns } from '../../scripts/redrive/history.ts';
import { uniqueName } from '../support/config.ts';
import { readTopic } from '../support/topic-reader.ts';
import { highWatermarks, redriven, startRedriveStack, type RedriveStack, type Seeded } from './support.ts';

let s: RedriveStack;
let main: string;
const c1 = uniqueName('company');
const c2 = uniqueName('company');
const c3 = uniqueName('company');
const OLD = Date.now() - 2 * 3_600_000;
let A: Seeded[]; // c1 greenhouse auth_failed, two hours old
let B: Seeded[]; // c1 lever unavailable
let C: Seeded[]; // c2 greenhouse unavailable
let D: Seeded[]; // c2, undecodable value, decode_failed
let E: Seeded[]; // c2 workable auth_failed, redriven 3 times already
let F: Seeded[]; // c2 workable auth_failed, redriven once
let R: Seeded[]; // c3 ashby rate_limited ×40 (rate test)

const keysOf = (records: Array<{ key: Buffer | string | null }>): string[] => records.map((r) => (r.key === null ? '' : r.key.toString())).sort();
const seededKeys = (...groups: Seeded[][]): string[] => groups.flat().map((x) => x.key).sort();

beforeAll(async () => {
  s = await startRedriveStack();
  main = s.config.topics.applications;
  A = await s.seed([0, 1, 2].map(() => ({ companyId: c1, platform: 'greenhouse', code: 'auth_failed', timestamp: OLD })));
  B = await s.seed([0, 1].map(() => ({ companyId: c1, platform: 'lever', code: 'unavailable' })));
  C = await s.seed([0, 1].map(() => ({ companyId: c2, platform: 'greenhouse', code: 'unavailable' })));
  D = await s.seed([{ companyId: c2, platform: 'greenhouse', code: 'decode_failed', rawValue: Buffer.from('not avro at all') }]);
  E = await s.seed([{ companyId: c2, platform: 'workable', code: 'auth_failed', redriveCount: 3 }]);
  F = await s.seed([{ companyId: c2, platform: 'workable', code: 'auth_failed', redriveCount: 1 }]);
  R = await s.seed(Array.from({ length: 40 }, () => ({ companyId: c3, platform: 'ashby' as const, code: 'rate_limited' })));
});

afterAll(async () => {
  await s?.close();
});

describe('npm run redrive', () => {
  it('--dry-run prints the matches grouped by company, platform and error code, produces nothing, and is recorded', async () => {
    const before = await highWatermarks(s.kafka, main);
    const r = await s.cli(['--company', c1, '--dry-run', '--operator', 'test-operator']);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain('DRY RUN');
    expect(r.output).toMatch(new RegExp(`${c1}\\s+greenhouse\\s+auth_failed\\s+3`));
    expect(r.output).toMatch(new RegExp(`${c1}\\s+lever\\s+unavailable\\s+2`));
    expect(r.output).toContain('Sample (5 of 5)');
    expect(await highWatermarks(s.kafka, main)).toBe(before);
    const run = await createRedriveRuns(s.pool).get(r.id!);
    expect(run).toMatchObject({ dryRun: true, matched: 5, produced: 0, status: 'succeeded', operator: 'test-operator', filters: { company: [c1] } });
  });

  it('--company: key, value bytes and original headers kept, try count reset, redrive headers added', async () => {
    const r = await s.cli(['--company', c1]);
    expect(r.code, r.output).toBe(0);
    const out = await redriven(s.kafka, main, r.id!);
    expect(keysOf(out)).toEqual(seededKeys(A, B));
    for (const rec of out) {
      const seeded = [...A, ...B].find((x) => x.key === rec.key!.toString())!;
      expect(rec.value!.equals(seeded.value)).toBe(true);
      const { [HEADER.tryCount]: _try, [HEADER.dueAt]: _due, ...kept } = seeded.headers;
      expect(rec.headers).toEqual({ ...kept, [HEADER.redriveId]: r.id, [HEADER.redriveCount]: '1', [HEADER.redrivenAt]: expect.stringMatching(/^\d{13}$/) });
      expect(rec.headers[HEADER.tryCount]).toBeUndefined();
    }
    const run = await createRedriveRuns(s.pool).get(r.id!);
    expect(run).toMatchObject({ dryRun: false, matched: 5, produced: 5, refused: 0, status: 'succeeded', targetTopic: main });
  });

  it('--platform', async () => {
    const r = await s.cli(['--platform', 'lever']);
    expect(r.code, r.output).toBe(0);
    expect(keysOf(await redriven(s.kafka, main, r.id!))).toEqual(seededKeys(B));
  });

  it('--error-code (the loop guard refuses a record redriven 3 times already)', async () => {
    const r = await s.cli(['--error-code', 'auth_failed']);
    expect(r.code, r.output).toBe(0);
    expect(keysOf(await redriven(s.kafka, main, r.id!))).toEqual(seededKeys(A, F));
    expect(r.output).toContain('Refused');
    expect(r.output).toContain(E[0]!.key);
  });

  it('loop guard: refused at --max-redrives, counts carried on; a higher limit lets it through', async () => {
    const r = await s.cli(['--company', c2, '--platform', 'workable']);
    expect(r.code, r.output).toBe(0);
    const out = await redriven(s.kafka, main, r.id!);
    expect(keysOf(out)).toEqual(seededKeys(F));
    expect(out[0]!.headers[HEADER.redriveCount]).toBe('2');
    const run = await createRedriveRuns(s.pool).get(r.id!);
    expect(run).toMatchObject({ matched: 2, produced: 1, refused: 1 });

    const again = await s.cli(['--company', c2, '--platform', 'workable', '--max-redrives', '4']);
    expect(again.code, again.output).toBe(0);
    const through = await redriven(s.kafka, main, again.id!);
    expect(keysOf(through)).toEqual(seededKeys(E, F));
    expect(through.find((x) => x.key!.toString() === E[0]!.key)!.headers[HEADER.redriveCount]).toBe('4');
  });

  it('--since and --until use the time the record was dead-lettered', async () => {
    const cut = new Date(OLD + 3_600_000).toISOString();
    const old = await s.cli(['--until', cut]);
    expect(old.code, old.output).toBe(0);
    expect(keysOf(await redriven(s.kafka, main, old.id!))).toEqual(seededKeys(A));

    const recent = await s.cli(['--since', cut, '--company', c1]);
    expect(recent.code, recent.output).toBe(0);
    expect(keysOf(await redriven(s.kafka, main, recent.id!))).toEqual(seededKeys(B));
  });

  it('--application-id (repeatable) and --application-ids-file', async () => {
    const file = path.join(os.tmpdir(), `redrive-ids-${randomUUID()}.txt`);
    await writeFile(file, `# from the support ticket\n${C[1]!.key}\n\n`);
    const r = await s.cli(['--application-id', A[0]!.key, '--application-id', B[1]!.key, '--application-ids-file', file]);
    expect(r.code, r.output).toBe(0);
    expect(keysOf(await redriven(s.kafka, main, r.id!))).toEqual([A[0]!.key, B[1]!.key, C[1]!.key].sort());
  });

  it('--partition and --offset select DLQ coordinates', async () => {
    const dlq = await readTopic(s.kafka, s.config.topics.dlq);
    const partition = [0, 1, 2].find((p) => dlq.filter((x) => x.partition === p).length >= 3)!;
    const inPartition = dlq.filter((x) => x.partition === partition);
    const chosen = inPartition.slice(1, 3);
    const r = await s.cli(['--partition', String(partition), '--offset', `${chosen[0]!.offset}-${chosen[1]!.offset}`, '--max-redrives', '10']);
    expect(r.code, r.output).toBe(0);
    expect(keysOf(await redriven(s.kafka, main, r.id!))).toEqual(keysOf(chosen));
  });

  it('undecodable records match only filters that do not need the payload, and the report says so', async () => {
    const byCode = await s.cli(['--error-code', 'decode_failed', '--dry-run']);
    expect(byCode.code, byCode.output).toBe(0);
    expect(byCode.output).toMatch(/\(undecodable\)\s+\(undecodable\)\s+decode_failed\s+1/);
    expect(byCode.output).toContain('1 matched record(s) did not decode');

    const byCompany = await s.cli(['--company', c2, '--error-code', 'decode_failed', '--dry-run']);
    expect(byCompany.code, byCompany.output).toBe(0);
    expect(byCompany.output).toContain('No dead letter matches');
    expect(byCompany.output).toContain('1 record(s) in range did not decode, so --company/--platform/--application-id could not match them');
    expect(D[0]!.key).toBeTruthy();
  });

  it('--rate caps messages per second', async () => {
    const r = await s.cli(['--company', c3, '--rate', '20']);
    expect(r.code, r.output).toBe(0);
    const out = await redriven(s.kafka, main, r.id!);
    expect(keysOf(out)).toEqual(seededKeys(R));
    const at = out.map((x) => Number(x.headers[HEADER.redrivenAt])).sort((a, b) => a - b);
    // 40 messages at 20/s: the first goes at once, the other 39 one every 50 ms.
    expect(at[at.length - 1]! - at[0]!).toBeGreaterThanOrEqual(1_900);
    expect(at[at.length - 1]! - at[0]!).toBeLessThan(4_000);
  });

  it('--to a retry tier', async () => {
    const tier = s.config.topics.retryTiers[0]!;
    const r = await s.cli(['--company', c2, '--platform', 'greenhouse', '--error-code', 'unavailable', '--to', tier.name]);
    expect(r.code, r.output).toBe(0);
    expect(keysOf(await redriven(s.kafka, tier.topic, r.id!))).toEqual(seededKeys(C));
    expect(await redriven(s.kafka, main, r.id!)).toEqual([]);
  });

  it('leaves other consumer groups\' committed offsets on the DLQ unchanged, and no group of its own behind', async () => {
    const dlq = s.config.topics.dlq;
    const other = uniqueName('sink-group');
    await withAdmin(s.kafka, (admin) => admin.setOffsets({ groupId: other, topic: dlq, partitions: [0, 1, 2].map((partition) => ({ partition, offset: String(partition) })) }));
    const fetch = (groupId: string) =>
      withAdmin(s.kafka, async (admin) => (await admin.fetchOffsets({ groupId, topics: [dlq] }))[0]!.partitions.map((p) => `${p.partition}:${p.offset}`).sort().join(','));
    const before = await fetch(other);
    expect(before).toBe('0:0,1:1,2:2');

    const r = await s.cli(['--company', c1, '--max-redrives', '10']);
    expect(r.code, r.output).toBe(0);
    expect(await redriven(s.kafka, main, r.id!)).toHaveLength(5);
    expect(await fetch(other)).toBe(before);
    expect(await fetch(`ats-relay.redrive.${r.id!}`)).toBe('0:-1,1:-1,2:-1');
    const groups = await withAdmin(s.kafka, (admin) => admin.listGroups());
    expect(groups.groups.map((g) => g.groupId)).not.toContain(`ats-relay.redrive.${r.id!}`);
  });

  it('--from-s3 republishes the archived bytes exactly (key, value, binary and repeated headers)', async () => {
    const cs = uniqueName('company');
    const dlq = s.config.topics.dlq;
    const ts = Date.now() - 600_000;
    const events = [s.event(cs, 'greenhouse'), s.event(cs, 'lever'), s.event(c1, 'greenhouse')];
    const records = await Promise.all(
      events.map(async (ev, i) => ({
        topic: dlq,
        partition: 1,
        offset: String(100 + i),
        timestamp: String(ts + i),
        key: Buffer.from(ev.applicationId),
        value: await s.codec.encode(ev),
        headers: {
          [HEADER.errorCode]: Buffer.from('auth_failed'),
          [HEADER.tryCount]: Buffer.from('1'),
          'x-binary': Buffer.from([0xff, 0x00, 0xfe, 0x80]),
          'x-repeated': [Buffer.from('first'), Buffer.from('second')],
        },
      })),
    );
    const key = archiveKey({ prefix: s.config.s3.prefix, topic: dlq, date: archiveDate(ts), partition: 1, firstOffset: '100', lastOffset: '102' });
    const body = buildArchiveObject(records.map((rec, i) => encodeArchiveLine(rec, { value: events[i] })));
    await s.s3.send(new PutObjectCommand({ Bucket: s.config.s3.bucket, Key: key, Body: body }));

    const r = await s.cli(['--from-s3', `s3://${s.config.s3.bucket}/${s.config.s3.prefix}/`, '--company', cs]);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain(`s3://${s.config.s3.bucket}/${s.config.s3.prefix}/`);
    const out = await redriven(s.kafka, main, r.id!);
    expect(out).toHaveLength(2);
    for (const rec of out) {
      const src = records.find((x) => x.key.equals(rec.key!))!;
      expect(src.topic).toBe(dlq);
      expect(rec.value!.equals(src.value)).toBe(true);
      expect(Buffer.from(rec.rawHeaders['x-binary'] as Buffer).equals(src.headers['x-binary'])).toBe(true);
      expect((rec.rawHeaders['x-repeated'] as Buffer[]).map((b) => b.toString())).toEqual(['first', 'second']);
      expect(rec.headers[HEADER.errorCode]).toBe('auth_failed');
      expect(rec.headers[HEADER.tryCount]).toBeUndefined();
      expect(rec.headers[HEADER.redriveCount]).toBe('1');
    }
    const run = await createRedriveRuns(s.pool).get(r.id!);
    expect(run).toMatchObject({ source: `s3://${s.config.s3.bucket}/${s.config.s3.prefix}/`, scanned: 3, matched: 2, produced: 2, skipped: 1 });
  });

  it('history lists the runs; bad flags exit 2 with a clear message', async () => {
    const dry = await s.cli(['--company', c3, '--dry-run', '--operator', 'history-check']);
    const h = await s.cli(['history', '--limit', '5']);
    expect(h.code, h.output).toBe(0);
    expect(h.output).toContain(dry.id!);
    expect(h.output).toMatch(/ID\s+STARTED\s+OPERATOR\s+MODE/);
    expect(h.output).toContain('history-check');

    const cases: Array<[string[], string]> = [
      [['--platform', 'nope'], 'unknown platform "nope"'],
      [['--to', s.config.topics.dlq], 'neither the main topic nor a retry tier'],
      [['--since', 'yesterday-ish'], '--since: expected an ISO 8601 time'],
      [['--rate', '0'], '--rate: expected a number'],
      [['--offset', '9-3'], 'ends before it starts'],
      [['--no-such-flag'], "Unknown option '--no-such-flag'"],
    ];
    for (const [args, message] of cases) {
      const bad = await s.cli(args);
      expect(bad.code, bad.output).toBe(2);
      expect(bad.output).toContain(message);
    }
  });
});
