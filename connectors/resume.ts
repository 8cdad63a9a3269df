/**
 * Fetching the resume named by the event (a reference: URL, name, type, size, sha256) so each
 * connector can send it in its vendor's format. Size cap, content-type allow-list and the checksum
 * are enforced here. A missing, oversized or unacceptable resume is a non-retriable
 * validation_failed — unless the integration allows delivering without it
 * (`integration.allowMissingResume`), in which case the delivery goes on and reports why.
 */
import { hash } from 'node:crypto';
import type { ApplicationSubmitted, DocumentRef } from '../lib/application.ts';
import type { Integration } from '../registry/integration.ts';
import { AtsError } from './ats-error.ts';
import type { AtsHttp } from './http.ts';

export const RESUME_CONTENT_TYPES = [
  'application/pdf',
  'application/msword',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  'application/rtf',
  'text/rtf',
  'text/plain',
  'application/vnd.oasis.opendocument.text',
] as const;

export interface Resume {
  fileName: string;
  contentType: string;
  bytes: Buffer;
}

export type ResumeOmission = 'absent' | 'not_found' | 'too_large' | 'unsupported_type' | 'checksum_mismatch';

export interface ResumeOutcome {
  resume: Resume | null;
  /** Why the delivery goes on without a resume (only when the integration allows it). */
  omitted: ResumeOmission | null;
}

function mediaType(value: string | string[] | undefined): string {
  const v = Array.isArray(value) ? value[0] : value;
  return (v ?? '').split(';')[0]!.trim().toLowerCase();
}

function refused(reason: ResumeOmission, message: string, status?: number): AtsError {
  return new AtsError('validation_failed', `resume ${message}`, { status, context: { resume: reason } });
}

async function download(ref: DocumentRef, http: AtsHttp, maxBytes: number, signal: AbortSignal | undefined): Promise<Resume> {
  if (ref.sizeBytes > maxBytes) throw refused('too_large', `is ${ref.sizeBytes} bytes, over the ${maxBytes}-byte limit`);
  const declared = mediaType(ref.contentType);
  if (!(RESUME_CONTENT_TYPES as readonly string[]).includes(declared)) {
    throw refused('unsupported_type', `has unsupported content type ${declared || '(none)'}`);
  }
  let res;
  try {
    res = await http.send({ method: 'GET', url: ref.url, signal, maxBodyBytes: maxBytes });
  } catch (err) {
    if (err instanceof AtsError && err.context.bodyTooLarge) throw refused('too_large', `exceeds the ${maxBytes}-byte limit`);
    throw err;
  }
  if (res.status === 404 || res.status === 410) throw refused('not_found', `not found at its URL (HTTP ${res.status})`, res.status);
  if (res.status >= 500 || res.status === 429 || res.status === 408) {
    throw new AtsError(res.status === 429 ? 'rate_limited' : 'unavailable', `resume download failed with HTTP ${res.status}`, {
      status: res.status,
      context: { resume: 'download' },
    });
  }
  if (res.status !== 200) throw refused('not_found', `download refused with HTTP ${res.status}`, res.status);
  const served = mediaType(res.headers['content-type']);
  if (!(RESUME_CONTENT_TYPES as readonly string[]).includes(served)) {
    throw refused('unsupported_type', `served as ${served || '(no content type)'}, not a document type`);
  }
  const sha256 = hash('sha256', res.body, 'hex'); // one-shot: no Hash object per delivery
  if (ref.sha256 && sha256 !== ref.sha256.toLowerCase()) throw refused('checksum_mismatch', 'content does not match its sha256');
  return { fileName: ref.fileName, contentType: served, bytes: res.body };
}

/** The application's resume, or null with a reason when the integration allows going without. */
export async function loadResume(
  application: ApplicationSubmitted,
  integration: Integration,
  http: AtsHttp,
  maxBytes: number,
  signal: AbortSignal | undefined,
): Promise<ResumeOutcome> {
  if (!application.resume) {
    if (integration.allowMissingResume) return { resume: null, omitted: 'absent' };
    throw refused('absent', 'is missing from the application (the integration requires one)');
  }
  try {
    return { resume: await download(application.resume, http, maxBytes, signal), omitted: null };
  } catch (err) {
    if (integration.allowMissingResume && err instanceof AtsError && !err.retriable && typeof err.context.resume === 'string') {
      return { resume: null, omitted: err.context.resume as ResumeOmission };
    }
    throw err;
  }
}
