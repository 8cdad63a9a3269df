/**
 * How Kafka failures look to the rest of ats-relay. An adapter turns every client error into a
 * `KafkaClientError` (the client's own retriable verdict, the broker's error name when it sent one);
 * callers turn that into a RelayError with `kafkaError()` to add what they were doing.
 */
import type { ErrorCode } from '../error-codes.ts';
import { RelayError } from '../errors.ts';

export class KafkaClientError extends Error {
  override name = 'KafkaClientError';
  /** A later attempt may work (broker down, timeouts, leader changes, retries exhausted). */
  readonly retriable: boolean;
  /** The Kafka protocol error name when the broker answered one (e.g. UNKNOWN_TOPIC_OR_PARTITION). */
  readonly brokerError: string | undefined;
  /** The client's own name for the failure (for logs). */
  readonly clientError: string;

  constructor(message: string, opts: { retriable: boolean; brokerError?: string | undefined; clientError: string; cause?: unknown }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.retriable = opts.retriable;
    this.brokerError = opts.brokerError;
    this.clientError = opts.clientError;
  }
}

/** The broker's error name carried by a failure, if any (adapter errors only). */
export function brokerErrorOf(err: unknown): string | undefined {
  return err instanceof KafkaClientError ? err.brokerError : undefined;
}

/** The two rows of the error-code table (lib/error-codes.ts) a Kafka failure becomes. */
export type KafkaErrorCode = Extract<ErrorCode, 'kafka_unavailable' | 'kafka_rejected'>;

/**
 * A Kafka failure as a RelayError: `kafka_unavailable` (retriable: broker down, timeouts, leader
 * changes, retries exhausted) or `kafka_rejected` (the broker refused the request for good, e.g.
 * a record too large or an unknown topic with auto-creation off).
 */
export function kafkaError(err: unknown, message: string, context: Record<string, unknown> = {}): RelayError<KafkaErrorCode> {
  if (err instanceof RelayError) return err as RelayError<KafkaErrorCode>;
  const e = err as { message?: string; retriable?: boolean };
  const retriable = e.retriable !== false;
  const kafkaErrorName = err instanceof KafkaClientError ? (err.brokerError ?? err.clientError) : (err as { name?: string }).name;
  return new RelayError(retriable ? 'kafka_unavailable' : 'kafka_rejected', `${message}: ${e.message ?? String(err)}`, {
    retriable,
    cause: err,
    context: { ...context, kafkaError: kafkaErrorName },
  });
}
