/**
 * Every error code ats-relay sets, in one table: whether a later attempt can succeed without anyone
 * changing anything (`retriable`), who raises it, what it means and what an operator does about it.
 * RelayError's `code`, the `ats-error-code` header, the delivery log and the metrics all take
 * `ErrorCode`, so a code that is not here does not compile. The README's error-code table is
 * generated from this one (`npm run docs:errors`; test/readme.test.ts keeps them equal).
 *
 * A code means one thing wherever it appears. Codes already written to DLQ headers and the delivery
 * log keep their spelling; the registry's request-validation code was renamed to `invalid_request`
 * because `validation_failed` already meant "the ATS rejected the application".
 */

/** Who sets a code: a family of the table (the README groups by it). */
export type ErrorSource = 'connector' | 'dispatcher' | 'serde' | 'kafka' | 'registry' | 'api' | 'keyring' | 'producer' | 'job import';

export interface ErrorCodeInfo {
  readonly retriable: boolean;
  readonly raisedBy: readonly ErrorSource[];
  /** One line: what happened (the typical cause). */
  readonly meaning: string;
  /** One line: what an operator does about it. */
  readonly action: string;
}

export const ERROR_CODES = {
  // --- what an ATS answered (connectors/ats-error.ts codeForStatus and each connector's overrides) ---
  auth_failed: {
    retriable: false,
    raisedBy: ['connector'],
    meaning: '401; Ashby 403 with a wrong key; Greenhouse v3 token endpoint 400/401; a credential missing',
    action: 'Get new credentials from the customer, update the integration, redrive',
  },
  forbidden: {
    retriable: false,
    raisedBy: ['connector'],
    meaning: "403 (missing permission/scope, On-Behalf-Of not a user; Ashby's resume storage refusing the upload); a base URL refused by the SSRF guard",
    action: "Fix the API key's permissions or the base URL, redrive",
  },
  validation_failed: {
    retriable: false,
    raisedBy: ['connector'],
    meaning: 'the ATS rejected the application: 400/422; Ashby `invalid_input`; resume missing, too large, wrong type or failing its sha256',
    action: 'Fix the data or the integration settings (or allow delivery without resume), redrive',
  },
  job_not_found: {
    retriable: false,
    raisedBy: ['connector'],
    meaning: '404 on the create call naming the job; Greenhouse 422 on `job_id` / `applications[0].job_id` ("job not found"); Ashby `job.info` or `application.create` not finding the job',
    action: 'Fix the job mapping (`integrations -- map-job`), redrive',
  },
  duplicate: {
    retriable: false,
    raisedBy: ['connector'],
    meaning: '409 or "already applied" that a re-search could not resolve',
    action: 'Check the candidate in the ATS; usually nothing to redrive',
  },
  rate_limited: {
    retriable: true,
    raisedBy: ['connector'],
    meaning: "429 (with `retryAfterMs`); our limiter's budget exhausted",
    action: "Nothing: the dispatcher defers the record without using a try (see Rate limits), so it never reaches the DLQ for this; steady deferrals mean the customer's budget is the bottleneck",
  },
  unavailable: {
    retriable: true,
    raisedBy: ['connector'],
    meaning: '5xx, 425; resume host 5xx',
    action: 'Wait for the ATS to recover, redrive the group',
  },
  timeout: {
    retriable: true,
    raisedBy: ['connector'],
    meaning: 'no connection/headers/body within `ATS_REQUEST_TIMEOUT_MS`, 408',
    action: 'As `unavailable`',
  },
  network: {
    retriable: true,
    raisedBy: ['connector'],
    meaning: 'reset, refused, DNS failure, aborted at shutdown (handed to the next tier)',
    action: 'As `unavailable`',
  },
  unexpected_response: {
    retriable: false,
    raisedBy: ['connector'],
    meaning: "a 2xx without the ids we need, a body not in the vendor's format, 3xx",
    action: "Look at the vendor's answer in the logs; may need a connector fix",
  },

  // --- what the dispatcher decides about a record before or around the ATS call ---
  decode_failed: {
    retriable: false,
    raisedBy: ['serde', 'dispatcher'],
    meaning: 'the value is not decodable Avro of the contract: empty, not Confluent-framed, or a body its schema cannot read (raw bytes kept)',
    action: 'Fix the producer; redrive by `--partition/--offset` once decodable',
  },
  unknown_schema: {
    retriable: false,
    raisedBy: ['serde', 'dispatcher'],
    meaning: 'the value names a schema id the registry does not know',
    action: 'Restore the schema, redrive with `--error-code unknown_schema`',
  },
  integration_not_found: {
    retriable: false,
    raisedBy: ['dispatcher'],
    meaning: "no integration with the event's id (deleted, wrong id)",
    action: 'Recreate or fix the producer; redrive',
  },
  integration_disabled: {
    retriable: false,
    raisedBy: ['dispatcher'],
    meaning: 'the integration is disabled',
    action: 'Enable it if deliveries should resume, redrive',
  },
  integration_mismatch: {
    retriable: false,
    raisedBy: ['dispatcher'],
    meaning: 'the integration belongs to another company than the event',
    action: 'Producer bug: fix it; do not redrive blindly',
  },
  circuit_open: {
    retriable: true,
    raisedBy: ['dispatcher'],
    meaning: 'the integration failed `CIRCUIT_FAILURE_THRESHOLD` times in a row; no call was made',
    action: 'Nothing; a half-open probe closes it when the ATS recovers',
  },
  internal_error: {
    retriable: false,
    raisedBy: ['dispatcher', 'api'],
    meaning: 'an unexpected error in ats-relay (a bug); the API answers it with 500',
    action: 'Read the logs (topic/partition/offset), fix, redrive',
  },

  // --- the schema registry and Avro (lib/serde.ts) ---
  registry_unavailable: {
    retriable: true,
    raisedBy: ['serde'],
    meaning: 'the schema registry did not answer or answered 5xx',
    action: 'Nothing if it comes back: the record stays uncommitted and is read again; otherwise restart the registry',
  },
  schema_rejected: {
    retriable: false,
    raisedBy: ['serde'],
    meaning: 'the registry refused to register the schema (incompatible or invalid)',
    action: "Make the schema change compatible with the subject's compatibility level, release again",
  },
  encode_failed: {
    retriable: false,
    raisedBy: ['serde'],
    meaning: 'an event does not match its schema (the field path is in the message)',
    action: 'Fix the producing code; nothing was published',
  },

  // --- Kafka (lib/kafka/errors.ts) ---
  kafka_unavailable: {
    retriable: true,
    raisedBy: ['kafka'],
    meaning: 'broker down, timeouts, leader changes, client retries exhausted',
    action: 'Nothing if the brokers come back: the caller retries; otherwise check the cluster',
  },
  kafka_rejected: {
    retriable: false,
    raisedBy: ['kafka'],
    meaning: 'the broker refused the request for good (a record too large, a topic that does not exist)',
    action: 'Run `npm run topics -- ensure` or fix the record size; read the message for which',
  },

  // --- the integration registry (registry/, its HTTP API and the operators' CLI) ---
  invalid_request: {
    retriable: false,
    raisedBy: ['registry'],
    meaning: 'a request to the registry is invalid: unknown platform, missing setting or credential, malformed or unknown field, bad cursor (every bad field listed)',
    action: 'Fix the request (the API answers 400 with `fields`)',
  },
  not_found: {
    retriable: false,
    raisedBy: ['registry', 'api'],
    meaning: "unknown id or route, or another company's integration/company for a company token",
    action: 'Check the id and the token\'s scope',
  },
  version_conflict: {
    retriable: false,
    raisedBy: ['registry'],
    meaning: 'an update sent a stale `version` (someone else changed the integration)',
    action: 'Read the integration again and reapply the change',
  },

  // --- the HTTP API's own answers (api/: Fastify's 4xx, authentication, what this build lacks) ---
  bad_request: {
    retriable: false,
    raisedBy: ['api'],
    meaning: 'the request body is not JSON',
    action: 'Fix the client',
  },
  unsupported_media_type: {
    retriable: false,
    raisedBy: ['api'],
    meaning: 'the request body is not `application/json`',
    action: 'Send `content-type: application/json`',
  },
  payload_too_large: {
    retriable: false,
    raisedBy: ['api'],
    meaning: 'the request body is over the API\'s limit (256 KiB)',
    action: 'Send less (credentials and settings are small)',
  },
  unauthorized: {
    retriable: false,
    raisedBy: ['api'],
    meaning: 'no or unknown bearer token; an inbound webhook whose signature does not verify',
    action: 'Send a valid API token (`integrations -- create-token`); check the webhook signing secret',
  },
  gone: {
    retriable: false,
    raisedBy: ['api'],
    meaning: 'an inbound webhook for a disabled integration',
    action: 'Enable the integration if its webhooks should be taken again',
  },
  not_implemented: {
    retriable: false,
    raisedBy: ['api'],
    meaning: 'a connection test or job import in a process without ATS connectors',
    action: 'Run the API with connectors (`npm run api` wires them)',
  },

  // --- credentials at rest (registry/keyring.ts) ---
  unknown_key_id: {
    retriable: false,
    raisedBy: ['keyring'],
    meaning: 'stored credentials were sealed with a key that is not in `ATS_RELAY_ENCRYPTION_KEYS`',
    action: 'Put the old key back in the keyring (after the primary), then `integrations -- rotate-keys`',
  },
  decrypt_failed: {
    retriable: false,
    raisedBy: ['keyring'],
    meaning: 'stored credentials do not open with the key of their id (wrong key material, or the data was altered)',
    action: 'Restore the right key for that id; if the data was altered, enter the credentials again',
  },

  // --- producing (producers/) ---
  invalid_input: {
    retriable: false,
    raisedBy: ['producer'],
    meaning: '`publishApplication()` input does not satisfy the contract (every bad field listed)',
    action: 'Fix the calling backend service; nothing was published',
  },
  sync_running: {
    retriable: true,
    raisedBy: ['job import'],
    meaning: 'a job import of the integration is already running in another process',
    action: 'Nothing: the next scheduled run imports; the API answers 409',
  },
  not_importable: {
    retriable: false,
    raisedBy: ['job import'],
    meaning: 'the integration has no job listing to import (generic receiver), or the listing is longer than the page limit',
    action: 'Map the jobs by hand (`integrations -- map-job`)',
  },
} as const satisfies Record<string, ErrorCodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Codes a family raises, as a union type: `CodeOf<'connector'>` is what an AtsError may carry. */
export type CodeOf<S extends ErrorSource> = {
  [C in ErrorCode]: S extends (typeof ERROR_CODES)[C]['raisedBy'][number] ? C : never;
}[ErrorCode];

export const ALL_ERROR_CODES = Object.keys(ERROR_CODES) as ErrorCode[];

/** The codes of one family, in table order. */
export function codesRaisedBy<S extends ErrorSource>(source: S): Array<CodeOf<S>> {
  return ALL_ERROR_CODES.filter((c) => (ERROR_CODES[c].raisedBy as readonly ErrorSource[]).includes(source)) as Array<CodeOf<S>>;
}

export function isErrorCode(s: string): s is ErrorCode {
  return Object.hasOwn(ERROR_CODES, s);
}

/** Whether a later attempt can succeed without anyone changing anything. */
export function isRetriable(code: ErrorCode): boolean {
  return ERROR_CODES[code].retriable;
}

/** The body of an HTTP error answer, `{ error, message }`: typed, so an answer cannot name a code the table lacks. */
export function errorBody(code: ErrorCode, message?: string): { error: ErrorCode; message?: string } {
  return message === undefined ? { error: code } : { error: code, message };
}
