/**
 * pino, with redaction of every field that may hold a secret. Payloads are never logged by
 * callers; the redact list is the safety net for credentials that slip into an object.
 */
import pino, { type Logger } from 'pino';

export type { Logger };

/** Field names whose values are secrets wherever they appear (one level deep and nested). */
export const SECRET_FIELDS = [
  'password',
  'apiKey',
  'api_key',
  'token',
  'accessToken',
  'access_token',
  'clientSecret',
  'client_secret',
  'secret',
  'secretAccessKey',
  'credentials',
  'authorization',
  'Authorization',
  'signingSecret',
  'encryptionKeys',
] as const;

const redactPaths = SECRET_FIELDS.flatMap((f) => [f, `*.${f}`, `*.*.${f}`, `headers.${f}`, `req.headers.${f}`]);

export interface LoggerOptions {
  level: string;
  name?: string;
  /** Destination stream; defaults to stdout. Tests pass a memory stream to assert redaction. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(opts: LoggerOptions): Logger {
  return pino(
    {
      level: opts.level,
      name: opts.name,
      base: { pid: process.pid },
      redact: { paths: redactPaths, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    opts.destination ?? pino.destination({ fd: 1, sync: false }),
  );
}
