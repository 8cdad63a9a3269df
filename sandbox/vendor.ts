/** What each vendor emulation provides to the sandbox server. */
import { createHash } from 'node:crypto';
import type { Platform } from '../registry/integration.ts';
import type { RateWindow, SandboxState, Tenant } from './state.ts';
import type { SandboxReply, SandboxRequest } from './wire.ts';

export interface VendorEmulation {
  platform: Platform;
  /** The tenant a request claims to belong to (by credential or path), before any check. */
  tenantOf(req: SandboxRequest, state: SandboxState): Tenant | undefined;
  /** The vendor's documented limit, enforced unless the tenant overrides it. */
  defaultRateLimit(req: SandboxRequest, tenant: Tenant): RateWindow | null;
  /** Rate-limit headers in the vendor's style (every answer), plus the 429 extras when throttled. */
  rateHeaders(limit: RateWindow, remaining: number, resetEpochSeconds: number, throttled: boolean): Record<string, string>;
  /** The body of a 429 / 5xx in the vendor's style. */
  errorBody(status: number, message: string): unknown;
  handle(req: SandboxRequest, state: SandboxState, tenant: Tenant | undefined): SandboxReply | Promise<SandboxReply>;
}

/** What the sandbox keeps of an uploaded file: enough to assert on, not the bytes. */
export function fileSummary(fileName: string, contentType: string | undefined, bytes: Buffer): Record<string, unknown> {
  return { fileName, contentType: contentType ?? null, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}
