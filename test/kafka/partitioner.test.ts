/**
 * Keyed records go where the Java client puts them, and where they went before our own murmur2
 * replaced kafkajs': a deploy of this change must not move any application to another partition.
 */
import { randomUUID } from 'node:crypto';
// The partitioner this one replaced is the reference for "nothing moved"; only this test reads it.
// eslint-disable-next-line no-restricted-imports
import { Partitioners } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { murmur2, partitionForKey } from '../../lib/kafka/index.ts';

describe('partitioning by key', () => {
  it("matches the Java client's murmur2 on its own published values", () => {
    // org.apache.kafka.common.utils.UtilsTest#testMurmur2
    const java: Array<[string, number]> = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
      ['abc', 479470107],
    ];
    for (const [key, hash] of java) expect(murmur2(Buffer.from(key)), key).toBe(hash);
  });

  it("picks the partition kafkajs' default partitioner picked, for every kind of key", () => {
    const before = Partitioners.DefaultPartitioner();
    const keys: Array<string | Buffer> = ['', 'a', 'ab', 'abc', 'abcd', 'Zoë', 'José-€', '😀', 'app-\u0000-x'];
    for (let i = 0; i < 5_000; i++) {
      keys.push(`app-${randomUUID()}`, randomUUID().slice(0, i % 37), `${'ü'.repeat(i % 5)}${i}`);
      keys.push(Buffer.from(randomUUID().replace(/-/g, '').slice(0, i % 33), 'hex'));
    }
    for (const partitions of [1, 3, 12, 100]) {
      const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({ partitionId, leader: 1, partitionErrorCode: 0, replicas: [1], isr: [1] }));
      const moved = keys.filter((key) => partitionForKey(key, partitions) !== before({ topic: 't', partitionMetadata, message: { key, value: null } }));
      expect(moved, `${partitions} partitions`).toEqual([]);
    }
  });
});
