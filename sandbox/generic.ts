/**
 * A generic REST receiver, mounted at /generic/{tenant}/… (any sub-path): checks the configured
 * auth and the `X-ATS-Relay-Signature` (sha256=<hex HMAC of the raw body>) with the tenant's
 * signing secret, requires a JSON object with the tenant's required fields, and honours
 * `Idempotency-Key` (a replay gets the first answer again with `Idempotent-Replayed: true`).
 * GET answers 405 after the auth check, so a connection test sees auth problems as 401.
 */
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import type { SandboxState, Tenant } from './state.ts';
import type { VendorEmulation } from './vendor.ts';
import { basicAuth, bearer, header, jsonBody, reply, type SandboxReply, type SandboxRequest } from './wire.ts';

const route = (req: SandboxRequest) => /^\/([^/]+)(\/.*)?$/.exec(req.path);

function authorised(req: SandboxRequest, tenant: Tenant): boolean {
  if (req.forceBadCredentials) return false;
  const creds = tenant.spec.credentials;
  const spec = tenant.spec.generic ?? { authStyle: 'none' as const };
  switch (spec.authStyle) {
    case 'none':
      return true;
    case 'header':
      return header(req, spec.headerName ?? 'X-API-Key') === creds.apiKey;
    case 'bearer':
      return bearer(req) === creds.token;
    case 'basic': {
      const b = basicAuth(req);
      return !!b && b[0] === creds.username && b[1] === (creds.password ?? '');
    }
  }
}

function signatureValid(req: SandboxRequest, secret: string | undefined): boolean {
  if (!secret) return true;
  const got = header(req, 'x-ats-relay-signature') ?? '';
  const want = `sha256=${createHmac('sha256', secret).update(req.body).digest('hex')}`;
  return got.length === want.length && timingSafeEqual(Buffer.from(got), Buffer.from(want));
}

function missingFields(body: Record<string, unknown>, paths: string[]): string[] {
  return paths.filter((p) => {
    let cur: unknown = body;
    for (const part of p.split('.')) cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[part] : undefined;
    return cur === undefined || cur === null || cur === '';
  });
}

function receive(req: SandboxRequest, tenant: Tenant): SandboxReply {
  if (!signatureValid(req, tenant.spec.credentials.signingSecret)) return reply(401, { error: 'invalid signature' });
  const key = header(req, 'idempotency-key');
  const seen = key ? tenant.idempotency.get(key) : undefined;
  if (seen) return reply(seen.status, seen.body, { 'idempotent-replayed': 'true' });
  const body = jsonBody(req);
  if (!body) return reply(400, { error: 'body must be a JSON object' });
  const missing = missingFields(body, tenant.spec.generic?.requiredFields ?? []);
  if (missing.length) return reply(422, { error: `missing required fields: ${missing.join(', ')}` });
  const id = randomUUID();
  const candidateId = randomUUID();
  tenant.applications.set(id, { id, candidateId, path: route(req)?.[2] ?? '/', method: req.method, idempotencyKey: key ?? null, body });
  tenant.candidates.set(candidateId, { id: candidateId, applicationId: id });
  const answer = { id, applicationId: id, candidateId };
  if (key) tenant.idempotency.set(key, { status: 201, body: answer });
  return reply(201, answer);
}

export const generic: VendorEmulation = {
  platform: 'generic',

  tenantOf(req: SandboxRequest, state: SandboxState) {
    const m = route(req);
    return m ? state.tenant('generic', decodeURIComponent(m[1]!)) : undefined;
  },

  defaultRateLimit: () => null,

  rateHeaders: (limit, remaining, reset) => ({ 'x-ratelimit-limit': String(limit.limit), 'x-ratelimit-remaining': String(remaining), 'x-ratelimit-reset': String(reset) }),

  errorBody: (_status, message) => ({ error: message }),

  handle(req, _state, tenant) {
    if (!tenant) return reply(404, { error: 'no such receiver' });
    if (!authorised(req, tenant)) return reply(401, { error: 'unauthorized' });
    if (req.method === 'POST' || req.method === 'PUT') return receive(req, tenant);
    return reply(405, { error: 'method not allowed' });
  },
};
