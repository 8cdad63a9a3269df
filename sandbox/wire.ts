/**
 * Request/answer shapes shared by the vendor emulations, and the body parsers they need
 * (JSON, urlencoded form, multipart/form-data) — strict: a malformed body is the client's error.
 */
import type { IncomingHttpHeaders } from 'node:http';

export interface SandboxRequest {
  method: string;
  /** Path below the vendor prefix, e.g. "/v1/candidates". */
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** Origin the client used, for URLs the sandbox hands out (Ashby upload URLs). */
  origin: string;
  /** Set by a bad_credentials fault: the handler must treat the credentials as wrong. */
  forceBadCredentials: boolean;
}

export interface SandboxReply {
  status: number;
  headers?: Record<string, string>;
  /** JSON-serialised unless a Buffer. */
  body?: unknown;
}

export function reply(status: number, body?: unknown, headers?: Record<string, string>): SandboxReply {
  return { status, body, ...(headers ? { headers } : {}) };
}

export function header(req: SandboxRequest, name: string): string | undefined {
  const v = req.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

export function mediaType(req: SandboxRequest): string {
  return (header(req, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase();
}

/** Parsed JSON object body, or undefined when it is not JSON / not an object. */
export function jsonBody(req: SandboxRequest): Record<string, unknown> | undefined {
  if (mediaType(req) !== 'application/json') return undefined;
  try {
    const v = JSON.parse(req.body.toString('utf8')) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** `Basic` credentials as [user, password], or undefined. */
export function basicAuth(req: SandboxRequest): [string, string] | undefined {
  const h = header(req, 'authorization');
  const m = h ? /^Basic\s+(\S+)$/i.exec(h) : null;
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  return i < 0 ? undefined : [decoded.slice(0, i), decoded.slice(i + 1)];
}

export function bearer(req: SandboxRequest): string | undefined {
  const h = header(req, 'authorization');
  return h ? /^Bearer\s+(\S+)$/i.exec(h)?.[1] : undefined;
}

export interface MultipartPart {
  name: string;
  fileName?: string;
  contentType?: string;
  data: Buffer;
}

/** multipart/form-data parts, or undefined when the body is not well-formed multipart. */
export function multipartBody(req: SandboxRequest): MultipartPart[] | undefined {
  const ct = header(req, 'content-type') ?? '';
  const m = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(ct);
  if (mediaType(req) !== 'multipart/form-data' || !m) return undefined;
  const boundary = Buffer.from(`--${(m[1] ?? m[2])!.trim()}`);
  const body = req.body;
  const parts: MultipartPart[] = [];
  let pos = body.indexOf(boundary);
  if (pos < 0) return undefined;
  for (;;) {
    pos += boundary.length;
    if (body.subarray(pos, pos + 2).toString() === '--') return parts;
    pos += 2; // CRLF after the boundary
    const headerEnd = body.indexOf('\r\n\r\n', pos);
    if (headerEnd < 0) return undefined;
    const rawHeaders = body.subarray(pos, headerEnd).toString('utf8');
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), boundary]), headerEnd + 4);
    if (next < 0) return undefined;
    const disposition = /content-disposition:\s*form-data;([^\r\n]*)/i.exec(rawHeaders)?.[1] ?? '';
    const name = /\bname="([^"]*)"/i.exec(disposition)?.[1];
    if (name === undefined) return undefined;
    const fileName = /\bfilename="([^"]*)"/i.exec(disposition)?.[1];
    const contentType = /content-type:\s*([^\r\n]+)/i.exec(rawHeaders)?.[1]?.trim();
    parts.push({ name, ...(fileName === undefined ? {} : { fileName }), ...(contentType ? { contentType } : {}), data: body.subarray(headerEnd + 4, next) });
    pos = next + 2;
  }
}

export function formBody(req: SandboxRequest): URLSearchParams | undefined {
  return mediaType(req) === 'application/x-www-form-urlencoded' ? new URLSearchParams(req.body.toString('utf8')) : undefined;
}

export function isBase64(s: unknown): s is string {
  return typeof s === 'string' && s.length > 0 && s.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(s);
}

export function isEmail(s: unknown): s is string {
  return typeof s === 'string' && /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(s);
}
