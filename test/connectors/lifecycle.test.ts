import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConnectors } from '../../connectors/index.ts';
import type { Platform } from '../../registry/integration.ts';
import { fixture, startHarness, type Harness } from './support.ts';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

const platforms: Array<[string, Platform, Record<string, unknown>]> = [
  ['greenhouse v1', 'greenhouse', { apiVersion: 'v1' }],
  ['greenhouse v3', 'greenhouse', {}],
  ['lever', 'lever', {}],
  ['workable', 'workable', {}],
  ['ashby', 'ashby', {}],
  ['generic', 'generic', {}],
];

describe('testConnection', () => {
  it.each(platforms)('%s: resolves with good credentials, auth_failed with bad ones', async (_name, platform, settings) => {
    const f = fixture(h, platform, { settings: settings as never });
    await expect(h.connectors.testConnection(f.integration)).resolves.toBeUndefined();
    const wrong = Object.fromEntries(Object.entries(f.integration.credentials).map(([k, v]) => [k, k === 'signingSecret' ? v : `${v}-wrong`]));
    await expect(h.connectors.testConnection({ ...f.integration, credentials: wrong })).rejects.toMatchObject({ code: 'auth_failed', retriable: false });
  });
});

describe('lifecycle', () => {
  it('close() aborts in-flight deliveries (retriable network error) and refuses new ones', async () => {
    const connectors = createConnectors({ requestTimeoutMs: 30_000, allowPrivateNetworks: true, resumeMaxBytes: 64 * 1024 });
    const f = fixture(h, 'lever');
    h.sandbox.addFault({ kind: 'hang', tenant: f.tenant, hangMs: 20_000 });
    const pending = connectors.deliver(f.app(), f.integration).then(
      () => undefined,
      (e: unknown) => e,
    );
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    await connectors.close();
    await connectors.close();
    expect(await pending).toMatchObject({ code: 'network', retriable: true });
    expect(Date.now() - started).toBeLessThan(2_000);
    await expect(connectors.deliver(f.app(), f.integration)).rejects.toMatchObject({ code: 'network' });
    h.sandbox.clearFaults();
  });

  it('a caller signal aborts a delivery', async () => {
    const f = fixture(h, 'workable');
    h.sandbox.addFault({ kind: 'latency', ms: 2_000, tenant: f.tenant });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    await expect(h.connectors.deliver(f.app(), f.integration, ac.signal)).rejects.toMatchObject({ code: 'network', retriable: true });
    h.sandbox.clearFaults();
  });

  it('keeps one keep-alive pool per ATS origin: 20 deliveries reuse at most 2 sockets', async () => {
    let connections = 0;
    const { default: http } = await import('node:http');
    const probe = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end('{}'));
    });
    probe.on('connection', () => connections++);
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const port = (probe.address() as { port: number }).port;
    const g = fixture(h, 'generic');
    const integration = { ...g.integration, settings: { ...g.integration.settings, url: `http://127.0.0.1:${port}/hook` } };
    for (let i = 0; i < 20; i++) await h.connectors.deliver(g.app(), integration);
    // undici may open a second socket while the first is being released; after that they are reused.
    expect(connections).toBeLessThanOrEqual(2);
    probe.closeAllConnections();
    await new Promise<void>((r) => probe.close(() => r()));
  });
});
