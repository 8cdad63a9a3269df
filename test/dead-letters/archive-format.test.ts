/**
 * lib/dlq-archive.ts (the contract the redrive tool reads) and the pure digest aggregation.
 */
import { describe, expect, it } from 'vitest';
import { Digest, factOf, redriveCommand } from '../../consumers/alerts/digest.ts';
import { archiveKey, buildArchiveObject, encodeArchiveLine, parseArchiveKey, parseArchiveObject } from '../../lib/dlq-archive.ts';
import { HEADER } from '../../lib/headers.ts';

describe('DLQ archive format', () => {
  it('builds and parses keys', () => {
    const parts = { prefix: 'dlq-archive/prod', topic: 'ats.applications.dlq', date: '2026-11-23', partition: 7, firstOffset: '1200', lastOffset: '1699' };
    const key = archiveKey(parts);
    expect(key).toBe('dlq-archive/prod/ats.applications.dlq/dt=2026-11-23/partition=7/1200-1699.jsonl.gz');
    expect(parseArchiveKey(key)).toEqual(parts);
    expect(parseArchiveKey(archiveKey({ ...parts, prefix: '' }))).toEqual({ ...parts, prefix: '' });
    expect(parseArchiveKey('dlq-archive/other.txt')).toBeUndefined();
  });

  it('round-trips a record byte-exactly, repeated and binary headers included', () => {
    const record = {
      topic: 'ats.applications.dlq',
      partition: 2,
      offset: '41',
      timestamp: '1790000000000',
      key: Buffer.from('app-1'),
      value: Buffer.from([0, 0, 0, 0, 1, 2, 3, 255]),
      headers: { [HEADER.errorCode]: Buffer.from('auth_failed'), multi: [Buffer.from('a'), Buffer.from('b')], bin: Buffer.from([0xc3, 0x28]) },
    };
    const gz = buildArchiveObject([encodeArchiveLine(record, { value: { applicationId: 'app-1' } }), encodeArchiveLine({ ...record, offset: '42', key: null, value: null }, { value: null, decodeError: 'no value' })]);
    const [a, b] = parseArchiveObject(gz);
    expect(a!.key).toEqual(record.key);
    expect(a!.value).toEqual(record.value);
    expect(a!.rawHeaders).toEqual(record.headers);
    expect(a!.headers[HEADER.errorCode]).toBe('auth_failed');
    expect(a!.decoded).toEqual({ applicationId: 'app-1' });
    expect(b).toMatchObject({ offset: '42', key: null, value: null, decoded: null, decodeError: 'no value' });
  });
});

describe('digest aggregation', () => {
  const fact = (partition: number, offset: number, companyId = 'acme', code = 'unavailable') =>
    factOf(
      { topic: 'dlq', partition, offset: String(offset), timestamp: String(1_790_000_000_000 + offset), headers: { [HEADER.errorCode]: code, [HEADER.errorMessage]: `boom ${offset % 5}` } },
      { companyId, platform: 'lever', applicationId: `app-${partition}-${offset}` },
    );

  it('counts each offset once, groups biggest first, caps samples and ids, drops a revoked partition', () => {
    const d = new Digest({ maxSamples: 3, maxApplicationIds: 4 });
    for (let o = 0; o < 10; o++) expect(d.add(fact(0, o), 0)).toBe(true);
    for (let o = 0; o < 10; o++) expect(d.add(fact(0, o), 0)).toBe(false); // re-read
    for (let o = 0; o < 3; o++) d.add(fact(1, o, 'globex', 'auth_failed'), 0);
    expect(d.total).toBe(13);
    const [big, small] = d.groups();
    expect([big!.companyId, big!.count, small!.companyId, small!.count]).toEqual(['acme', 10, 'globex', 3]);
    expect(big!.samples).toHaveLength(3);
    expect(big!.applicationIds).toHaveLength(4);
    expect(big!.moreApplicationIds).toBe(6);
    expect(d.commitOffsets()).toEqual([
      { topic: 'dlq', partition: 0, offset: '10' },
      { topic: 'dlq', partition: 1, offset: '3' },
    ]);
    expect(d.dropPartition('dlq', 1)).toBe(3);
    expect(d.total).toBe(10);
    expect(redriveCommand(big!)).toBe(`npm run redrive -- --company acme --platform lever --error-code unavailable --since ${new Date(1_790_000_000_000).toISOString()}`);
  });
});
