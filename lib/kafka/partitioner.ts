/**
 * Which partition a keyed record goes to: the Java client's default partitioner, toPositive(murmur2(key
 * bytes)) % partitions. Every client that produces to ats-relay's topics must agree on it, or one
 * application's events would land on two partitions and lose their order.
 *
 * Our own copy, in 32-bit integer arithmetic: kafkajs' murmur2 builds ~40 Long objects per key
 * (~5 µs and ~4.5 KB of garbage per record; issue 17), the same answer for every key
 * (test/kafka/partitioner.test.ts checks the Java client's published values and kafkajs' partitions).
 */

const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/** The 32-bit signed murmur2 hash of `data`, as org.apache.kafka.common.utils.Utils.murmur2. */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  let h = SEED ^ length;
  const blocks = length & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const tail = length & 3;
  if (tail > 0) {
    if (tail === 3) h ^= data[blocks + 2]! << 16;
    if (tail >= 2) h ^= data[blocks + 1]! << 8;
    h ^= data[blocks]!;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** The partition of a keyed record among `partitions` (string keys as their UTF-8 bytes). */
export function partitionForKey(key: Buffer | string, partitions: number): number {
  return (murmur2(typeof key === 'string' ? Buffer.from(key, 'utf8') : key) & 0x7fffffff) % partitions;
}
