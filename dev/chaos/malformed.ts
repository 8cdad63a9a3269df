/**
 * Garbage for the main topic, of every kind a broken producer could send. Each record's value is
 * unique (the audit finds it in the DLQ by the hash of its bytes, which the pipeline keeps intact).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { OutboundRecord } from '../../lib/kafka/index.ts';
import type { World } from './world.ts';

export const MALFORMED_KINDS = ['random-bytes', 'wrong-magic', 'unknown-schema', 'truncated-avro', 'invalid-fields', 'null-key'] as const;
export type MalformedKind = (typeof MALFORMED_KINDS)[number] | 'oversized';

/** Under the broker's default 1 MB message.max.bytes, leaving room for the headers a DLQ hop adds. */
export const OVERSIZED_BYTES = 900_000;

function schemaIdPrefix(magic: number, id: number): Buffer {
  const b = Buffer.alloc(5);
  b.writeUInt8(magic, 0);
  b.writeInt32BE(id, 1);
  return b;
}

export async function malformedRecord(world: World, kind: MalformedKind): Promise<OutboundRecord> {
  const key = `malformed-${randomUUID()}`;
  switch (kind) {
    case 'random-bytes':
      return { key, value: randomBytes(16 + Math.floor(Math.random() * 512)) };
    case 'wrong-magic':
      return { key, value: Buffer.concat([schemaIdPrefix(7, 1), randomBytes(64)]) };
    case 'unknown-schema':
      // Ids far above anything the registry has handed out; a handful, so lookups are few.
      return { key, value: Buffer.concat([schemaIdPrefix(0, 2_000_000_000 + Math.floor(Math.random() * 5)), randomBytes(64)]) };
    case 'truncated-avro': {
      // Cut past the header and the event id (so each value is unique), before the end.
      const whole = await world.codec.encode(world.event(world.customers[0]!));
      return { key, value: whole.subarray(0, 5 + 37 + Math.floor(Math.random() * (whole.length / 2))) };
    }
    case 'invalid-fields': {
      // Valid Avro, but the integration does not exist and the e-mail is not one.
      const e = world.event(world.customers[0]!);
      const value = await world.codec.encode({ ...e, integrationId: randomUUID(), candidate: { ...e.candidate, email: `not-an-email-${randomUUID()}` } });
      return { key: e.applicationId, value };
    }
    case 'null-key':
      return { key: null, value: Buffer.concat([Buffer.from('null key '), randomBytes(48)]) };
    case 'oversized':
      return { key, value: randomBytes(OVERSIZED_BYTES) };
  }
}
