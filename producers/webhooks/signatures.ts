/**
 * Inbound webhook verification, one scheme per vendor (HMAC-SHA256 everywhere; ../shared/docs/ats-inbound.md §6):
 *
 *   vendor      signature                                  key                       signed bytes
 *   greenhouse  header `Signature: sha256 <hex>`           the webhook secret        the raw body
 *   lever       body field `signature` (hex)               the event's token, else   body `token` + `triggeredAt`
 *                                                          the webhook secret
 *   workable    header `X-Workable-Signature: <hex>`       the account's API token   the raw body
 *   ashby       header `Ashby-Signature: sha256=<hex>`     the webhook secret        the raw body
 *   generic     header `X-ATS-Relay-Signature: sha256=<hex>` the webhook secret      the raw body
 *
 * Always on the raw bytes as received (re-serialising parsed JSON changes escapes and breaks
 * Greenhouse's signatures), compared in constant time on decoded bytes of equal length. Where a
 * signed timestamp exists (Lever `triggeredAt`, generic `occurredAt`) it must be within the
 * tolerance either way, so a captured request cannot be replayed later.
 *
 * Pure: `now` is a parameter. The reason is for our logs only; the caller answers a bare 401.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Platform } from '../../registry/integration.ts';

export type Headers = Record<string, string | string[] | undefined>;

export type Verification = { ok: true; json: unknown } | { ok: false; reason: 'missing_signature' | 'bad_signature' | 'stale' | 'malformed' };

export interface VerifyOptions {
  /** Epoch ms. */
  now: number;
  toleranceMs: number;
}

function header(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function hmacHex(secret: string, data: Buffer | string): Buffer {
  return createHmac('sha256', secret).update(data).digest();
}

/** Constant-time: a hex string (either case) against the expected digest; false on anything malformed. */
export function hexMatches(given: string | undefined, expected: Buffer): boolean {
  if (!given || !/^[0-9a-fA-F]+$/.test(given) || given.length !== expected.length * 2) return false;
  return timingSafeEqual(Buffer.from(given, 'hex'), expected);
}

function parse(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

/** Epoch ms from a number (ms) or an ISO-8601 string; undefined otherwise. */
export function epochMs(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && v) {
    const t = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
    return Number.isFinite(t) ? t : undefined;
  }
  return undefined;
}

export function verifyWebhook(platform: Platform, headers: Headers, body: Buffer, secret: string, opts: VerifyOptions): Verification {
  const fresh = (t: number | undefined): boolean => t !== undefined && Math.abs(opts.now - t) <= opts.toleranceMs;
  const bodyScheme = (value: string | undefined, prefix: RegExp): Verification => {
    if (!value) return { ok: false, reason: 'missing_signature' };
    const m = prefix.exec(value.trim());
    if (!m || !hexMatches(m[1], hmacHex(secret, body))) return { ok: false, reason: 'bad_signature' };
    const json = parse(body);
    return json === undefined ? { ok: false, reason: 'malformed' } : { ok: true, json };
  };
  switch (platform) {
    case 'greenhouse':
      return bodyScheme(header(headers, 'signature'), /^sha256 ([0-9a-fA-F]+)$/);
    case 'ashby':
      return bodyScheme(header(headers, 'ashby-signature'), /^sha256=([0-9a-fA-F]+)$/);
    case 'workable':
      return bodyScheme(header(headers, 'x-workable-signature'), /^([0-9a-fA-F]+)$/);
    case 'generic': {
      const v = bodyScheme(header(headers, 'x-ats-relay-signature'), /^sha256=([0-9a-fA-F]+)$/);
      if (!v.ok) return v;
      return fresh(epochMs((v.json as { occurredAt?: unknown } | null)?.occurredAt)) ? v : { ok: false, reason: 'stale' };
    }
    case 'lever': {
      // Lever signs token + triggeredAt, not the payload: the body is parsed first, and only ids are trusted from it.
      const json = parse(body) as { token?: unknown; triggeredAt?: unknown; signature?: unknown } | undefined;
      if (!json || typeof json !== 'object') return { ok: false, reason: 'malformed' };
      if (typeof json.signature !== 'string' || !json.signature) return { ok: false, reason: 'missing_signature' };
      if (typeof json.token !== 'string' || (typeof json.triggeredAt !== 'number' && typeof json.triggeredAt !== 'string')) return { ok: false, reason: 'malformed' };
      if (!hexMatches(json.signature, hmacHex(secret, `${json.token}${String(json.triggeredAt)}`))) return { ok: false, reason: 'bad_signature' };
      return fresh(epochMs(json.triggeredAt)) ? { ok: true, json } : { ok: false, reason: 'stale' };
    }
    default:
      return { ok: false, reason: 'malformed' };
  }
}

/**
 * Lever's body `event`, read before verification to choose the key (Lever issues a token per
 * webhook, i.e. per event type). Unverified by design: the name only picks which token must have
 * signed, so a forged name still needs that event's token. Undefined when absent or not parseable.
 */
export function leverEventName(body: Buffer): string | undefined {
  const json = parse(body) as { event?: unknown } | null | undefined;
  return json && typeof json === 'object' && typeof json.event === 'string' ? json.event : undefined;
}

// --- signing, for the sandbox and tests (the same schemes, from the sender's side) -----------------

export function signatureHeaders(platform: Platform, body: Buffer | string, secret: string): Record<string, string> {
  const hex = createHmac('sha256', secret).update(body).digest('hex');
  switch (platform) {
    case 'greenhouse':
      return { signature: `sha256 ${hex}` };
    case 'ashby':
      return { 'ashby-signature': `sha256=${hex}` };
    case 'workable':
      return { 'x-workable-signature': hex };
    case 'generic':
      return { 'x-ats-relay-signature': `sha256=${hex}` };
    default:
      return {};
  }
}

/** Lever's body signature over token + triggeredAt. */
export function leverSignature(token: string, triggeredAt: number, secret: string): string {
  return createHmac('sha256', secret).update(`${token}${triggeredAt}`).digest('hex');
}
