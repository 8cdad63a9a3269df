/**
 * The one error a connector throws. Its `code` is one of the table's connector codes
 * (lib/error-codes.ts) so the dispatcher can route by table; `retriable` follows the code; `retryAfterMs` is set
 * only when the ATS (or our own rate limiter) said when to come back.
 */
import { codesRaisedBy, isRetriable, type CodeOf } from '../lib/error-codes.ts';
import { RelayError, truncate } from '../lib/errors.ts';

/** What an ATS answered, as codes (their rows, with `retriable`, are in lib/error-codes.ts). */
export const ATS_ERROR_CODES = codesRaisedBy('connector');
export type AtsErrorCode = CodeOf<'connector'>;

export interface AtsErrorOptions {
  status?: number | undefined;
  retryAfterMs?: number | undefined;
  /** What the ATS said, already stripped of secrets; truncated here. */
  vendorMessage?: string | undefined;
  cause?: unknown;
  context?: Record<string, unknown>;
}

export class AtsError extends RelayError<AtsErrorCode> {
  override name = 'AtsError';
  readonly retryAfterMs: number | undefined;
  readonly vendorMessage: string | undefined;

  constructor(code: AtsErrorCode, message: string, opts: AtsErrorOptions = {}) {
    const vendorMessage = opts.vendorMessage === undefined ? undefined : truncate(opts.vendorMessage, 300);
    super(code, message, {
      retriable: isRetriable(code),
      status: opts.status,
      cause: opts.cause,
      context: {
        ...opts.context,
        ...(opts.retryAfterMs === undefined ? {} : { retryAfterMs: opts.retryAfterMs }),
        ...(vendorMessage === undefined ? {} : { vendorMessage }),
      },
    });
    this.retryAfterMs = opts.retryAfterMs;
    this.vendorMessage = vendorMessage;
  }
}

/**
 * HTTP status → code, for vendors that use status codes honestly. A connector overrides a row when
 * its vendor says otherwise (Ashby's 200 + success:false, Greenhouse's 422 for an unknown job…).
 * 404 means job_not_found because connectors only let a 404 through on calls naming the job.
 */
export function codeForStatus(status: number): AtsErrorCode {
  if (status === 401) return 'auth_failed';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'job_not_found';
  if (status === 408) return 'timeout';
  if (status === 409) return 'duplicate';
  if (status === 429) return 'rate_limited';
  if (status === 425 || status >= 500) return 'unavailable';
  if (status === 400 || status === 422) return 'validation_failed';
  return 'unexpected_response';
}

/**
 * What the vendor said, fit to travel in headers, logs and e-mails: credentials it echoed back and
 * e-mail addresses (the candidate's, usually) are masked, whitespace folded.
 */
export function vendorText(text: string, secrets: Iterable<string | undefined>): string {
  return scrubSecrets(text, secrets)
    .replace(/[^\s@<>()[\]"',;:]+@[^\s@<>()[\]"',;:]+\.[a-z]{2,}/gi, '<e-mail>')
    .replace(/\s+/g, ' ')
    .trim();
}

/** Replace any credential value that a vendor echoed back before the text leaves the connector. */
export function scrubSecrets(text: string, secrets: Iterable<string | undefined>): string {
  let out = text;
  for (const s of secrets) {
    if (s && s.length >= 4) out = out.split(s).join('****');
  }
  return out;
}
