/**
 * ApplicationSubmitted ⇄ bytes, through the Confluent-compatible Schema Registry.
 *
 * Wire format (Confluent): magic byte 0, the schema id as a 4-byte big-endian integer, the Avro body.
 * Subjects use the topic name strategy (`<topic>-value`) with BACKWARD compatibility: consumers on the
 * new schema read old records, and since fields are only ever added with defaults, old consumers read
 * new records too.
 *
 * `decode` always resolves the writer's schema into this codec's own (the reader), so a consumer built
 * on version N sees exactly the fields of version N, whatever version produced the record.
 */
import { readFileSync } from 'node:fs';
import { COMPATIBILITY, SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import avro from 'avsc';
import type { ApplicationSubmitted } from './application.ts';
import { RelayError } from './errors.ts';

export const APPLICATION_SCHEMA_FILE = new URL('../schemas/application-submitted.avsc', import.meta.url);

/** The contract in schemas/application-submitted.avsc, parsed. */
export function loadApplicationSchema(): avro.Schema {
  return JSON.parse(readFileSync(APPLICATION_SCHEMA_FILE, 'utf8')) as avro.Schema;
}

/** The way back's contracts (schemas/application-status-changed.avsc, schemas/job-synced.avsc). */
export const STATUS_SCHEMA_FILE = new URL('../schemas/application-status-changed.avsc', import.meta.url);
export const JOB_SCHEMA_FILE = new URL('../schemas/job-synced.avsc', import.meta.url);

export function loadSchemaFile(file: URL): avro.Schema {
  return JSON.parse(readFileSync(file, 'utf8')) as avro.Schema;
}

export const SERDE_ERROR_CODES = ['registry_unavailable', 'schema_rejected', 'encode_failed', 'decode_failed'] as const;
export type SerdeErrorCode = (typeof SERDE_ERROR_CODES)[number];

export class SerdeError extends RelayError<SerdeErrorCode> {
  override name = 'SerdeError';
}

export const MAGIC_BYTE = 0;
const HEADER_BYTES = 5;

export interface RegistryRetry {
  /** Attempts after the first for one registry request (default 3). */
  retries: number;
  initialRetryTimeInSecs: number;
  maxRetryTimeInSecs: number;
}

export interface EventCodecOptions {
  registryUrl: string;
  /** The subject is `<topic>-value` (topic name strategy). */
  topic: string;
  /** The schema this codec writes and reads as; default: the contract in schemas/. */
  schema?: avro.Schema;
  retry?: Partial<RegistryRetry>;
}

export interface EventCodec<T = ApplicationSubmitted> {
  readonly subject: string;
  /** Register (or find) the schema under the subject, with BACKWARD compatibility. Cached after the first call. */
  register(): Promise<number>;
  /** Confluent-framed Avro of `event` under the registered schema id (registers on first use). */
  encode(event: T): Promise<Buffer>;
  /**
   * The same bytes as `encode`, without waiting: `undefined` until the schema id is known (the first
   * call starts the registration in the background). For writers that must never wait on the registry,
   * like an outbox insert inside the backend's own transaction.
   */
  encodeIfRegistered(event: T): Buffer | undefined;
  /** Decode any record of the subject, resolving the writer's schema into this codec's. */
  decode(bytes: Buffer): Promise<T>;
}

const DEFAULT_RETRY: RegistryRetry = { retries: 3, initialRetryTimeInSecs: 0.1, maxRetryTimeInSecs: 2 };

/**
 * Errors from the registry client: no answer / 5xx → retriable `registry_unavailable`; 409/422 on
 * register → `schema_rejected` (incompatible or invalid, a code change is needed).
 */
function registryError(err: unknown, action: string, context: Record<string, unknown>): SerdeError {
  if (err instanceof SerdeError) return err;
  const status = (err as { status?: number }).status;
  const message = (err as Error).message ?? String(err);
  if (status === 409 || status === 422) {
    return new SerdeError('schema_rejected', `${action}: the registry rejected the schema: ${message}`, { retriable: false, status, cause: err, context });
  }
  return new SerdeError('registry_unavailable', `${action}: schema registry unavailable: ${message}`, { retriable: true, status, cause: err, context });
}

export function createEventCodec<T = ApplicationSubmitted>(opts: EventCodecOptions): EventCodec<T> {
  const retry = { ...DEFAULT_RETRY, ...opts.retry, factor: 0.2, multiplier: 2 };
  const registry = new SchemaRegistry({ host: opts.registryUrl, retry });
  const schema = opts.schema ?? loadApplicationSchema();
  const readerType = avro.Type.forSchema(schema);
  const subject = `${opts.topic}-value`;
  let schemaId: Promise<number> | undefined;
  /** Set once `schemaId` resolved. */
  let knownId: number | undefined;
  /** Writer schema id → resolver into the reader type (or the reader type itself when identical). */
  const readers = new Map<number, Promise<(body: Buffer) => T>>();

  function register(): Promise<number> {
    schemaId ??= registry
      .register({ type: SchemaType.AVRO, schema: JSON.stringify(schema) }, { subject, compatibility: COMPATIBILITY.BACKWARD })
      .then((r) => (knownId = r.id))
      .catch((err: unknown) => {
        schemaId = undefined; // a later call tries again
        throw registryError(err, 'register', { subject });
      });
    return schemaId;
  }

  function readerFor(id: number): Promise<(body: Buffer) => T> {
    let reader = readers.get(id);
    if (!reader) {
      reader = registry.getSchema(id).then(
        (writer) => {
          const writerType = writer as unknown as avro.Type;
          if (writerType.equals(readerType)) return (body: Buffer) => readerType.fromBuffer(body) as T;
          const resolver = readerType.createResolver(writerType);
          return (body: Buffer) => readerType.fromBuffer(body, resolver) as T;
        },
        (err: unknown) => {
          readers.delete(id);
          if ((err as { status?: number }).status === 404) {
            throw new SerdeError('decode_failed', `schema id ${id} is not in the registry`, { retriable: false, status: 404, cause: err, context: { schemaId: id } });
          }
          throw registryError(err, 'fetch schema', { schemaId: id });
        },
      );
      readers.set(id, reader);
    }
    return reader;
  }

  /** The wire format of `event` under schema id `id`; the registry only names the schema, the bytes are ours. */
  function frame(id: number, event: T): Buffer {
    let body: Buffer;
    try {
      body = readerType.toBuffer(event);
    } catch (err) {
      const paths: string[][] = [];
      readerType.isValid(event, { errorHook: (path) => paths.push(path) });
      throw new SerdeError('encode_failed', `event does not match the schema at ${paths.map((p) => p.join('.')).join(', ') || (err as Error).message}`, {
        retriable: false,
        cause: err,
        context: { subject, schemaId: id, fields: paths.map((p) => p.join('.')) },
      });
    }
    const bytes = Buffer.allocUnsafe(HEADER_BYTES + body.length);
    bytes[0] = MAGIC_BYTE;
    bytes.writeInt32BE(id, 1);
    body.copy(bytes, HEADER_BYTES);
    return bytes;
  }

  return {
    subject,
    register,

    async encode(event) {
      return frame(await register(), event);
    },

    encodeIfRegistered(event) {
      if (knownId === undefined) {
        register().catch(() => undefined); // the next call looks again
        return undefined;
      }
      return frame(knownId, event);
    },

    async decode(bytes) {
      if (bytes.length < HEADER_BYTES || bytes[0] !== MAGIC_BYTE) {
        throw new SerdeError('decode_failed', `not Confluent-framed Avro (${bytes.length} bytes, first byte ${bytes[0] ?? 'none'})`, {
          retriable: false,
          context: { subject },
        });
      }
      const id = bytes.readInt32BE(1);
      const read = await readerFor(id);
      try {
        return read(bytes.subarray(HEADER_BYTES));
      } catch (err) {
        throw new SerdeError('decode_failed', `undecodable Avro body for schema id ${id}: ${(err as Error).message}`, {
          retriable: false,
          cause: err,
          context: { subject, schemaId: id },
        });
      }
    },
  };
}
