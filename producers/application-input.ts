/**
 * What the candidate backend hands the producer for one accepted application, and its validation.
 * The rest of the event (event id, integration, platform, the ATS's job id) is added by enrichment.
 *
 * Validation names every bad field at once (`candidate.email: must be an e-mail address`), so the
 * backend can fix its mapping in one go; nothing is sent or written when any field is bad.
 */
import type { ApplicationSubmitted, CandidateLink, Consent, DocumentRef, ScreeningAnswer } from '../lib/application.ts';
import type { CodeOf } from '../lib/error-codes.ts';
import { RelayError } from '../lib/errors.ts';
import { isHttpUrl, type FieldError } from '../registry/json-schema.ts';

export type { FieldError };

export interface ApplicationInput {
  /** The job board's application id; the record key. */
  applicationId: string;
  companyId: string;
  /** The job board's job id (mapped to the ATS's job per integration). */
  jobId: string;
  /** When the application was accepted (epoch ms or a Date); default: now. */
  occurredAt?: number | Date;
  candidate: {
    firstName: string;
    lastName: string;
    email: string;
    phone?: string | null;
    location?: { city?: string | null; region?: string | null; country?: string | null } | null;
    links?: CandidateLink[];
  };
  resume?: DocumentRef | null;
  coverLetter?: DocumentRef | null;
  screeningAnswers?: ScreeningAnswer[];
  /** Where the candidate came from, e.g. job-board, referral. */
  source: string;
  consent: Consent;
  extras?: Record<string, string>;
}

/** The input with every optional field filled in: exactly the event minus what enrichment adds. */
export type ValidApplication = Omit<ApplicationSubmitted, 'eventId' | 'integrationId' | 'platform' | 'atsJobId'>;

export type InputErrorCode = CodeOf<'producer'>;

export class InvalidInputError extends RelayError<InputErrorCode> {
  override name = 'InvalidInputError';
  constructor(readonly fields: FieldError[]) {
    super('invalid_input', `invalid application: ${fields.map((f) => `${f.field}: ${f.message}`).join('; ')}`, {
      retriable: false,
      status: 400,
      context: { fields },
    });
  }
}

const ID = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;
const EMAIL = /^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/;
const SHA256 = /^[0-9a-f]{64}$/;
const CONTENT_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*(;.*)?$/i;
const MAX_TEXT = 10_000;

/** Collects field errors while reading an untrusted object; every getter returns a usable value. */
class Reader {
  readonly errors: FieldError[] = [];

  fail(field: string, message: string): void {
    this.errors.push({ field, message });
  }

  object(value: unknown, field: string, allowed: readonly string[]): Record<string, unknown> | undefined {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.fail(field, value === undefined ? 'is required' : 'must be an object');
      return undefined;
    }
    for (const key of Object.keys(value)) {
      if (!allowed.includes(key)) this.fail(field ? `${field}.${key}` : key, 'is not an allowed field');
    }
    return value as Record<string, unknown>;
  }

  string(value: unknown, field: string, opts: { max?: number; pattern?: RegExp; describe?: string } = {}): string {
    if (value === undefined || value === null) {
      this.fail(field, 'is required');
      return '';
    }
    if (typeof value !== 'string') {
      this.fail(field, 'must be a string');
      return '';
    }
    if (value.trim() === '') this.fail(field, 'must not be empty');
    else if (value.length > (opts.max ?? MAX_TEXT)) this.fail(field, `must be at most ${opts.max ?? MAX_TEXT} characters`);
    else if (opts.pattern && !opts.pattern.test(value)) this.fail(field, `must be ${opts.describe ?? `like ${opts.pattern.source}`}`);
    return value;
  }

  optionalString(value: unknown, field: string, opts: { max?: number } = {}): string | null {
    if (value === undefined || value === null) return null;
    return this.string(value, field, opts);
  }

  url(value: unknown, field: string): string {
    const s = this.string(value, field, { max: 4096 });
    if (s && !isHttpUrl(s)) this.fail(field, 'must be an absolute http(s) URL');
    return s;
  }

  boolean(value: unknown, field: string): boolean {
    if (typeof value !== 'boolean') this.fail(field, value === undefined ? 'is required' : 'must be true or false');
    return value === true;
  }

  array(value: unknown, field: string, max: number): unknown[] {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) {
      this.fail(field, 'must be an array');
      return [];
    }
    if (value.length > max) this.fail(field, `must have at most ${max} items`);
    return value;
  }
}

function readDocument(r: Reader, value: unknown, field: string): DocumentRef | null {
  if (value === undefined || value === null) return null;
  const o = r.object(value, field, ['url', 'fileName', 'contentType', 'sizeBytes', 'sha256']);
  if (!o) return null;
  const sizeBytes = o.sizeBytes;
  if (typeof sizeBytes !== 'number' || !Number.isSafeInteger(sizeBytes) || sizeBytes < 0) {
    r.fail(`${field}.sizeBytes`, sizeBytes === undefined ? 'is required' : 'must be a whole number of bytes ≥ 0');
  }
  return {
    url: r.url(o.url, `${field}.url`),
    fileName: r.string(o.fileName, `${field}.fileName`, { max: 255 }),
    contentType: r.string(o.contentType, `${field}.contentType`, { max: 255, pattern: CONTENT_TYPE, describe: 'a MIME type such as application/pdf' }),
    sizeBytes: typeof sizeBytes === 'number' ? sizeBytes : 0,
    sha256: r.string(o.sha256, `${field}.sha256`, { pattern: SHA256, describe: '64 lower-case hex digits (SHA-256 of the file)' }),
  };
}

function readOccurredAt(r: Reader, value: unknown, now: number): number {
  if (value === undefined) return now;
  const ms = value instanceof Date ? value.getTime() : value;
  if (typeof ms !== 'number' || !Number.isSafeInteger(ms) || ms < 0) {
    r.fail('occurredAt', 'must be a Date or whole epoch milliseconds');
    return now;
  }
  return ms;
}

export type ValidationResult = { ok: true; value: ValidApplication } | { ok: false; errors: FieldError[] };

const TOP_LEVEL = ['applicationId', 'companyId', 'jobId', 'occurredAt', 'candidate', 'resume', 'coverLetter', 'screeningAnswers', 'source', 'consent', 'extras'];

/** Check every field; fill optional ones (null, [], {}; occurredAt = now). Never throws. */
export function validateApplicationInput(input: unknown, now = Date.now()): ValidationResult {
  const r = new Reader();
  const o = r.object(input, '', TOP_LEVEL);
  if (!o) return { ok: false, errors: r.errors.map((e) => ({ ...e, field: e.field || '(input)' })) };
  const idRule = { max: 200, pattern: ID, describe: 'letters, digits, ".", "_", ":" or "-", starting with a letter or digit' };

  const c = r.object(o.candidate, 'candidate', ['firstName', 'lastName', 'email', 'phone', 'location', 'links']) ?? {};
  let location: ValidApplication['candidate']['location'] = null;
  if (c.location !== undefined && c.location !== null) {
    const l = r.object(c.location, 'candidate.location', ['city', 'region', 'country']) ?? {};
    location = {
      city: r.optionalString(l.city, 'candidate.location.city', { max: 200 }),
      region: r.optionalString(l.region, 'candidate.location.region', { max: 200 }),
      country: r.optionalString(l.country, 'candidate.location.country', { max: 200 }),
    };
  }
  const links = r.array(c.links, 'candidate.links', 50).map((item, i) => {
    const l = r.object(item, `candidate.links[${i}]`, ['type', 'url']) ?? {};
    return { type: r.string(l.type, `candidate.links[${i}].type`, { max: 50 }), url: r.url(l.url, `candidate.links[${i}].url`) };
  });
  const email = r.string(c.email, 'candidate.email', { max: 320 });
  if (email && !EMAIL.test(email)) r.fail('candidate.email', 'must be an e-mail address');

  const screeningAnswers = r.array(o.screeningAnswers, 'screeningAnswers', 200).map((item, i) => {
    const a = r.object(item, `screeningAnswers[${i}]`, ['questionId', 'question', 'answer']) ?? {};
    return {
      questionId: r.string(a.questionId, `screeningAnswers[${i}].questionId`, { max: 200 }),
      question: r.string(a.question, `screeningAnswers[${i}].question`),
      // An answer may legitimately be empty (an optional free-text question).
      answer: typeof a.answer === 'string' ? a.answer : (r.fail(`screeningAnswers[${i}].answer`, 'must be a string'), ''),
    };
  });

  const consentObj = r.object(o.consent, 'consent', ['dataProcessing', 'marketing']) ?? {};
  const consent = { dataProcessing: r.boolean(consentObj.dataProcessing, 'consent.dataProcessing'), marketing: r.boolean(consentObj.marketing, 'consent.marketing') };
  if (consentObj.dataProcessing === false) r.fail('consent.dataProcessing', 'must be true: an application without consent to data processing cannot be forwarded');

  const extras: Record<string, string> = {};
  if (o.extras !== undefined && o.extras !== null) {
    const e = r.object(o.extras, 'extras', Object.keys(o.extras as object)) ?? {};
    for (const [k, v] of Object.entries(e)) {
      if (typeof v !== 'string') r.fail(`extras.${k}`, 'must be a string');
      else extras[k] = v;
    }
    if (Object.keys(e).length > 100) r.fail('extras', 'must have at most 100 entries');
  }

  const value: ValidApplication = {
    applicationId: r.string(o.applicationId, 'applicationId', idRule),
    companyId: r.string(o.companyId, 'companyId', { ...idRule, max: 128 }),
    jobId: r.string(o.jobId, 'jobId', idRule),
    occurredAt: readOccurredAt(r, o.occurredAt, now),
    candidate: {
      firstName: r.string(c.firstName, 'candidate.firstName', { max: 200 }),
      lastName: r.string(c.lastName, 'candidate.lastName', { max: 200 }),
      email,
      phone: r.optionalString(c.phone, 'candidate.phone', { max: 50 }),
      location,
      links,
    },
    resume: readDocument(r, o.resume, 'resume'),
    coverLetter: readDocument(r, o.coverLetter, 'coverLetter'),
    screeningAnswers,
    source: r.string(o.source, 'source', { max: 100 }),
    consent,
    extras,
  };
  return r.errors.length ? { ok: false, errors: r.errors } : { ok: true, value };
}

/** Validate or throw InvalidInputError (non-retriable `invalid_input`, every bad field in `context.fields`). */
export function assertValidApplication(input: unknown, now = Date.now()): ValidApplication {
  const result = validateApplicationInput(input, now);
  if (!result.ok) throw new InvalidInputError(result.errors);
  return result.value;
}
