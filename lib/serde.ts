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
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import avro from 'avsc';
import type { ApplicationSubmitted } from './application.ts';
import type { CodeOf } from './error-codes.ts';
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

export type SerdeErrorCode = CodeOf<'serde'>;

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
  /**
   * How long one registry request may go without an answer before it fails and is retried (default
   * 10 s). Without it a request the registry never answers (seen in CI: a schema fetch that never
   * reached the registry's access log) would hold a decode, and the partition behind it, for good.
   */
  requestTimeoutMs?: number;
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
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

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

const WANTED_COMPATIBILITY = 'BACKWARD';
/** Levels that include BACKWARD: a subject set stricter on purpose is left as it is. */
const SATISFIES_BACKWARD = new Set([WANTED_COMPATIBILITY, 'BACKWARD_TRANSITIVE', 'FULL', 'FULL_TRANSITIVE']);
const REGISTRY_JSON = 'application/vnd.schemaregistry.v1+json';

/** An HTTP answer from the registry that is not a success, with the registry's own words. */
class RegistryHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function registryCall(url: string, init: { method: string; body?: unknown; timeoutMs: number }): Promise<unknown> {
  const res = await fetch(url, {
    method: init.method,
    // A timeout has no status: withRetry tries again, and the last one is `registry_unavailable`.
    signal: AbortSignal.timeout(init.timeoutMs),
    headers: { accept: REGISTRY_JSON, ...(init.body === undefined ? {} : { 'content-type': REGISTRY_JSON }) },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  const text = await res.text();
  if (!res.ok) {
    let message = text;
    try {
      message = (JSON.parse(text) as { message?: string }).message ?? text;
    } catch {
      // not JSON: keep the raw text
    }
    throw new RegistryHttpError(res.status, `${init.method} ${new URL(url).pathname}: HTTP ${res.status}: ${message.slice(0, 500)}`);
  }
  return text ? JSON.parse(text) : undefined;
}

/** Retries what may pass on a second try (no answer, 5xx, 408/429); a 4xx verdict is final. */
async function withRetry<T>(retry: RegistryRetry, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const status = (err as { status?: number }).status;
      const final = status !== undefined && status < 500 && status !== 408 && status !== 429;
      if (final || attempt >= retry.retries) throw err;
      const backoffSecs = Math.min(retry.maxRetryTimeInSecs, retry.initialRetryTimeInSecs * 2 ** attempt);
      await new Promise((r) => setTimeout(r, backoffSecs * 1000 * (0.8 + Math.random() * 0.4)));
    }
  }
}

/**
 * Register `schema` under `subject` and make sure the subject's compatibility is BACKWARD, safely
 * when any number of processes do the same at once on a new subject.
 *
 * The registry client's own register() reads the config, registers, then creates the config when it
 * read none: two processes starting together both read none, and the loser's create is refused
 * ("A rule named 'COMPATIBILITY' already exists" on Apicurio). Registering the same schema is
 * idempotent on the registry's side; for the config, a refused write is success once the config
 * reads as wanted.
 */
async function registerIdempotently(registryUrl: string, subject: string, schema: string, retry: RegistryRetry, timeoutMs: number): Promise<number> {
  const base = registryUrl.replace(/\/+$/, '');
  const configUrl = `${base}/config/${encodeURIComponent(subject)}`;
  const registered = await withRetry(retry, () =>
    registryCall(`${base}/subjects/${encodeURIComponent(subject)}/versions`, { method: 'POST', body: { schema }, timeoutMs }),
  );
  const id = (registered as { id?: unknown }).id;
  if (typeof id !== 'number') throw new Error(`register: the registry answered without a schema id: ${JSON.stringify(registered)}`);

  const readCompatibility = async (): Promise<string | undefined> => {
    try {
      const config = (await withRetry(retry, () => registryCall(configUrl, { method: 'GET', timeoutMs }))) as { compatibilityLevel?: string; compatibility?: string };
      return (config.compatibilityLevel ?? config.compatibility)?.toUpperCase();
    } catch (err) {
      if ((err as { status?: number }).status === 404) return undefined; // no subject-level config yet
      throw err;
    }
  };
  if (SATISFIES_BACKWARD.has((await readCompatibility()) ?? '')) return id;
  try {
    await withRetry(retry, () => registryCall(configUrl, { method: 'PUT', body: { compatibility: WANTED_COMPATIBILITY }, timeoutMs }));
  } catch (err) {
    // A concurrent starter may have written it first; what matters is what the subject says now.
    if (!SATISFIES_BACKWARD.has((await readCompatibility()) ?? '')) throw err;
  }
  return id;
}

type RegistryClientArgs = ConstructorParameters<typeof SchemaRegistry>[0];
type Middleware = NonNullable<RegistryClientArgs['middlewares']>[number];

/**
 * The registry client's retry rule: 5xx as its default, plus no answer at all (a timeout or a dropped
 * connection, which its HTTP gateway reports as a 400 carrying the error) and 408/429.
 */
const retriableAnswer: NonNullable<NonNullable<RegistryClientArgs['retry']>['validateRetry']> = (response) => {
  const status = response.responseStatus;
  return status >= 500 || status === 408 || status === 429 || (status === 400 && response.errors.length > 0);
};

/** A client middleware giving each registry request a deadline for its answer (socket idle time). */
function requestTimeout(ms: number): Middleware {
  return () => ({
    prepareRequest: (next) => next().then((request) => request.enhance({ timeout: ms })),
  });
}

export function createEventCodec<T = ApplicationSubmitted>(opts: EventCodecOptions): EventCodec<T> {
  const retry: RegistryRetry = { ...DEFAULT_RETRY, ...opts.retry };
  const timeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const registry = new SchemaRegistry({
    host: opts.registryUrl,
    retry: { ...retry, factor: 0.2, multiplier: 2, validateRetry: retriableAnswer },
    middlewares: [requestTimeout(timeoutMs)],
  });
  const schema = opts.schema ?? loadApplicationSchema();
  const readerType = avro.Type.forSchema(schema);
  const subject = `${opts.topic}-value`;
  let schemaId: Promise<number> | undefined;
  /** Set once `schemaId` resolved. */
  let knownId: number | undefined;
  /** Writer schema id → resolver into the reader type (or the reader type itself when identical). */
  const readers = new Map<number, Promise<(body: Buffer) => T>>();

  function register(): Promise<number> {
    schemaId ??= registerIdempotently(opts.registryUrl, subject, JSON.stringify(schema), retry, timeoutMs)
      .then((id) => (knownId = id))
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
            throw new SerdeError('unknown_schema', `schema id ${id} is not in the registry`, { retriable: false, status: 404, cause: err, context: { schemaId: id } });
          }
          throw registryError(err, 'fetch schema', { schemaId: id });
        },
      );
      readers.set(id, reader);
    }
    return reader;
  }

  /**
   * Where records are written before their exact-size copy: avsc's toBuffer writes into its own
   * buffer, copies into a zero-filled one, and the frame copied that again behind the header; one
   * write after the header here and one copy is about a third less CPU per record (issue 17).
   * Grows to the largest record seen.
   */
  let scratch = Buffer.allocUnsafe(16 * 1024);

  /** The wire format of `event` under schema id `id`; the registry only names the schema, the bytes are ours. */
  function frame(id: number, event: T): Buffer {
    let end: number;
    try {
      end = readerType.encode(event, scratch, HEADER_BYTES);
      if (end < 0) {
        // A negative answer is how many bytes were missing.
        scratch = Buffer.allocUnsafe(2 * (scratch.length - end));
        end = readerType.encode(event, scratch, HEADER_BYTES);
      }
    } catch (err) {
      const paths: string[][] = [];
      readerType.isValid(event, { errorHook: (path) => paths.push(path) });
      throw new SerdeError('encode_failed', `event does not match the schema at ${paths.map((p) => p.join('.')).join(', ') || (err as Error).message}`, {
        retriable: false,
        cause: err,
        context: { subject, schemaId: id, fields: paths.map((p) => p.join('.')) },
      });
    }
    scratch[0] = MAGIC_BYTE;
    scratch.writeInt32BE(id, 1);
    const bytes = Buffer.allocUnsafe(end);
    scratch.copy(bytes, 0, 0, end);
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
