/**
 * The Avro contract through the real registry: subject and compatibility, round trips, the
 * Confluent wire format read by an independent decoder, schema evolution both ways, and the
 * retriable / non-retriable error split.
 */
import net from 'node:net';
import type avro from 'avsc';
import { describe, expect, it } from 'vitest';
import type { ApplicationSubmitted } from '../../lib/application.ts';
import { RelayError } from '../../lib/errors.ts';
import { createEventCodec, loadApplicationSchema } from '../../lib/serde.ts';
import { testConfig, uniqueName } from '../support/config.ts';
import { independentDecode, sampleEvent } from './support.ts';

const config = testConfig();
const registryUrl = config.schemaRegistry.url;

/** v2 of the contract: one more optional field, as the evolution rule allows. */
function v2Schema(): avro.Schema {
  const v1 = loadApplicationSchema() as { fields: object[] };
  return { ...v1, fields: [...v1.fields, { name: 'referrerEmail', type: ['null', 'string'], default: null, doc: 'Who referred the candidate.' }] } as avro.Schema;
}

describe('ApplicationSubmitted serde', () => {
  it('registers under <topic>-value with BACKWARD compatibility and round-trips an event', async () => {
    const topic = uniqueName('apps');
    const codec = createEventCodec({ registryUrl, topic });
    const id = await codec.register();
    expect(codec.subject).toBe(`${topic}-value`);
    expect(await codec.register()).toBe(id); // cached

    const config = (await (await fetch(`${registryUrl}/config/${topic}-value`)).json()) as { compatibilityLevel: string };
    expect(config.compatibilityLevel).toBe('BACKWARD');

    const event = sampleEvent();
    const bytes = await codec.encode(event);
    expect(bytes[0]).toBe(0);
    expect(bytes.readInt32BE(1)).toBe(id);
    expect(await codec.decode(bytes)).toEqual(event);
    // A second codec (another process) decodes with the schema it fetches by id.
    expect(await createEventCodec({ registryUrl, topic }).decode(bytes)).toEqual(event);
  });

  it('encodes without waiting once the schema id is known: undefined before, the same bytes as encode after', async () => {
    const codec = createEventCodec({ registryUrl, topic: uniqueName('apps') });
    const event = sampleEvent();
    expect(codec.encodeIfRegistered(event)).toBeUndefined(); // starts the registration in the background
    await expect.poll(() => codec.encodeIfRegistered(event) !== undefined, { timeout: 10_000 }).toBe(true);
    expect(codec.encodeIfRegistered(event)).toEqual(await codec.encode(event));
    expect(() => codec.encodeIfRegistered({ ...event, occurredAt: 'yesterday' as unknown as number })).toThrow(
      expect.objectContaining({ code: 'encode_failed', retriable: false }),
    );
  });

  it('writes bytes an independent decoder reads: magic byte, schema id, Avro body', async () => {
    const codec = createEventCodec({ registryUrl, topic: uniqueName('apps') });
    const event = sampleEvent({ coverLetter: null, resume: null, extras: {}, candidate: { ...sampleEvent().candidate, phone: null, location: null, links: [] } });
    const bytes = await codec.encode(event);
    const decoded = await independentDecode(registryUrl, bytes);
    expect(decoded.schemaId).toBe(await codec.register());
    expect(decoded.value).toEqual(event);
  });

  it('frames records of any size: one larger than the writer\'s first buffer, then a small one, each exact', async () => {
    const codec = createEventCodec({ registryUrl, topic: uniqueName('apps') });
    const small = sampleEvent();
    const large = sampleEvent({ screeningAnswers: Array.from({ length: 40 }, (_, i) => ({ questionId: `q${i}`, question: 'Why?', answer: 'x'.repeat(1_000) })) });
    const largeBytes = await codec.encode(large);
    expect(largeBytes.length).toBeGreaterThan(40_000);
    const smallBytes = await codec.encode(small);
    expect((await independentDecode(registryUrl, largeBytes)).value).toEqual(large);
    expect((await independentDecode(registryUrl, smallBytes)).value).toEqual(small);
    // The small record's buffer is its own: encoding another does not change it.
    const before = Buffer.from(smallBytes);
    await codec.encode(large);
    expect(smallBytes.equals(before)).toBe(true);
  });

  it('evolves: v2 adds an optional field; a v1 consumer reads v2 records and a v2 consumer reads v1 records', async () => {
    const topic = uniqueName('apps');
    const v1 = createEventCodec({ registryUrl, topic });
    const v2 = createEventCodec<ApplicationSubmitted & { referrerEmail: string | null }>({ registryUrl, topic, schema: v2Schema() });
    const v1Id = await v1.register();
    const v2Id = await v2.register();
    expect(v2Id).not.toBe(v1Id);
    const versions = (await (await fetch(`${registryUrl}/subjects/${topic}-value/versions`)).json()) as number[];
    expect(versions).toHaveLength(2);

    const event = sampleEvent();
    const v2Bytes = await v2.encode({ ...event, referrerEmail: 'max@example.com' });
    const v1Bytes = await v1.encode(event);
    expect(v2Bytes.readInt32BE(1)).toBe(v2Id);

    // Old consumer, new record: the new field is dropped, everything else intact.
    expect(await v1.decode(v2Bytes)).toEqual(event);
    // New consumer, old record: the new field takes its default.
    expect(await v2.decode(v1Bytes)).toEqual({ ...event, referrerEmail: null });
    expect(await v2.decode(v2Bytes)).toEqual({ ...event, referrerEmail: 'max@example.com' });
  });

  it('registers from many starters at once on a new subject: every one gets the id, the subject ends BACKWARD', async () => {
    // Processes of a rollout start together; the registry client's check-then-create of the subject's
    // config let all but one of them fail ("rule COMPATIBILITY already exists").
    for (let round = 0; round < 3; round++) {
      const topic = uniqueName('apps');
      const ids = await Promise.all(Array.from({ length: 8 }, () => createEventCodec({ registryUrl, topic }).register()));
      expect(new Set(ids).size).toBe(1);
      const config = (await (await fetch(`${registryUrl}/config/${topic}-value`)).json()) as { compatibilityLevel: string };
      expect(config.compatibilityLevel).toBe('BACKWARD');
    }
  });

  it('refuses a breaking change: a new field without a default is rejected by the registry', async () => {
    const topic = uniqueName('apps');
    await createEventCodec({ registryUrl, topic }).register();
    const v1 = loadApplicationSchema() as { fields: object[] };
    const breaking = { ...v1, fields: [...v1.fields, { name: 'mandatory', type: 'string' }] } as avro.Schema;
    const err = await createEventCodec({ registryUrl, topic, schema: breaking }).register().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RelayError);
    expect(err).toMatchObject({ code: 'schema_rejected', retriable: false });
  });

  it('tells undecodable bytes and an unknown schema id (not retriable) from an unreachable registry (retriable)', async () => {
    const codec = createEventCodec({ registryUrl, topic: uniqueName('apps') });
    await expect(codec.decode(Buffer.from('{"json":"not avro"}'))).rejects.toMatchObject({ code: 'decode_failed', retriable: false });
    const bytes = await codec.encode(sampleEvent());
    const truncated = bytes.subarray(0, 20);
    await expect(codec.decode(truncated)).rejects.toMatchObject({ code: 'decode_failed', retriable: false });
    const unknownId = Buffer.from(bytes);
    unknownId.writeInt32BE(2_000_000_000, 1);
    await expect(codec.decode(unknownId)).rejects.toMatchObject({ code: 'unknown_schema', retriable: false });

    const down = createEventCodec({ registryUrl: 'http://127.0.0.1:9/apis/ccompat/v7', topic: uniqueName('apps'), retry: { retries: 1, maxRetryTimeInSecs: 0.2 } });
    await expect(down.encode(sampleEvent())).rejects.toMatchObject({ code: 'registry_unavailable', retriable: true });
    await expect(down.decode(bytes)).rejects.toMatchObject({ code: 'registry_unavailable', retriable: true });
  });

  it('a registry that takes the request and never answers: each request times out and is retried, then registry_unavailable (retriable), never a hang', async () => {
    // Seen in CI: a schema fetch that never reached the registry's log held a decode for 60 s.
    const requests: string[] = [];
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('data', (chunk) => requests.push(...(chunk.toString('latin1').match(/^(GET|POST|PUT) \S+/gm) ?? [])));
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}/apis/ccompat/v7`;
      const hung = createEventCodec({ registryUrl: url, topic: uniqueName('apps'), retry: { retries: 1, initialRetryTimeInSecs: 0.05, maxRetryTimeInSecs: 0.1 }, requestTimeoutMs: 300 });
      const framed = await createEventCodec({ registryUrl, topic: uniqueName('apps') }).encode(sampleEvent());
      const t0 = Date.now();
      await expect(hung.decode(framed)).rejects.toMatchObject({ code: 'registry_unavailable', retriable: true });
      // Retried (the registry client shares one retry setting per process, the last codec's: at least 2).
      expect(requests.filter((r) => r.startsWith('GET /apis/ccompat/v7/schemas/ids/')).length).toBeGreaterThanOrEqual(2);
      await expect(hung.encode(sampleEvent())).rejects.toMatchObject({ code: 'registry_unavailable', retriable: true });
      expect(requests.filter((r) => r.startsWith('POST /apis/ccompat/v7/subjects/'))).toHaveLength(2); // retries: 1
      expect(Date.now() - t0).toBeLessThan(10_000);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('names the fields of an event that does not match the schema', async () => {
    const codec = createEventCodec({ registryUrl, topic: uniqueName('apps') });
    const bad = { ...sampleEvent(), occurredAt: 'yesterday' } as unknown as ApplicationSubmitted;
    await expect(codec.encode(bad)).rejects.toMatchObject({ code: 'encode_failed', retriable: false, context: { fields: ['occurredAt'] } });
  });
});
