/**
 * Control a running ATS sandbox over HTTP (`/_sandbox/…`): what the demo and the benchmarks use
 * when the sandbox runs as its own process.
 */
import type { DocumentRef } from '../lib/application.ts';
import type { FaultSpec, TenantSpec } from './server.ts';
import type { WebhookResult, WebhookSpec } from './webhooks.ts';

export interface SandboxClient {
  url: string;
  addTenant(spec: TenantSpec): Promise<{ apiBaseUrl: string }>;
  addFault(spec: FaultSpec): Promise<{ id: string }>;
  clearFaults(id?: string): Promise<void>;
  addFile(name: string, bytes: Buffer, contentType: string): Promise<DocumentRef>;
  stats(): Promise<{ requests: number; byStatus: Record<string, number> }>;
  records(kind: 'candidates' | 'applications' | 'attachments', platform: string, tenant: string): Promise<Array<Record<string, unknown>>>;
  /** Have the sandbox sign and POST vendor webhooks (sandbox/webhooks.ts); one result per delivery. */
  fireWebhooks(specs: WebhookSpec[], opts?: { outOfOrder?: boolean }): Promise<WebhookResult[]>;
}

export function sandboxClient(url: string): SandboxClient {
  const call = async <T>(method: string, path: string, body?: Buffer | object, contentType = 'application/json'): Promise<T> => {
    const res = await fetch(`${url}/_sandbox${path}`, {
      method,
      ...(body === undefined ? {} : { body: Buffer.isBuffer(body) ? body : JSON.stringify(body), headers: { 'content-type': contentType } }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`sandbox ${method} ${path}: ${res.status} ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  };
  return {
    url,
    addTenant: (spec) => call('POST', '/tenants', spec),
    addFault: (spec) => call('POST', '/faults', spec),
    clearFaults: (id) => call('DELETE', id ? `/faults/${id}` : '/faults'),
    addFile: (name, bytes, contentType) => call('PUT', `/files/${encodeURIComponent(name)}`, bytes, contentType),
    stats: () => call('GET', '/stats'),
    records: (kind, platform, tenant) => call('GET', `/${kind}?platform=${platform}&tenant=${encodeURIComponent(tenant)}`),
    fireWebhooks: async (specs, opts) => (await call<{ results: WebhookResult[] }>('POST', '/webhooks', { deliveries: specs, outOfOrder: opts?.outOfOrder === true })).results,
  };
}

/** Poll until the sandbox at `url` answers. */
export async function waitForSandbox(url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(`${url}/_sandbox/health`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`the ATS sandbox at ${url} did not answer within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
