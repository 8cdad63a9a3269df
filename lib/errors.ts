/**
 * Errors are data: a short `code`, whether a retry can help (`retriable`), the HTTP status when an
 * HTTP peer answered, and enumerable context so the fields show in JSON logs. The code that fails
 * decides `retriable`; routers decide what to do with it. Codes come from one table
 * (lib/error-codes.ts).
 */
import { isRetriable, type ErrorCode } from './error-codes.ts';

export interface RelayErrorOptions {
  /** Default: the code's row in lib/error-codes.ts; set it when this failure knows better. */
  retriable?: boolean;
  status?: number | undefined;
  cause?: unknown;
  context?: Record<string, unknown>;
}

export class RelayError<Code extends ErrorCode = ErrorCode> extends Error {
  override name = 'RelayError';
  readonly code: Code;
  readonly retriable: boolean;
  readonly status: number | undefined;
  readonly context: Record<string, unknown>;

  constructor(code: Code, message: string, opts: RelayErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.retriable = opts.retriable ?? isRetriable(code);
    this.status = opts.status;
    this.context = opts.context ?? {};
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, retriable: this.retriable, status: this.status, message: this.message, ...this.context };
  }
}

/** Truncate text that came from a peer (vendor messages, bodies) before it is stored or logged. */
export function truncate(text: string, max = 500): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
