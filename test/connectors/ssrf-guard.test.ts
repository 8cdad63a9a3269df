import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkBaseUrl, createConnectors, type Connectors } from '../../connectors/index.ts';
import { isPrivateAddress } from '../../connectors/ssrf-guard.ts';
import { fixture, startHarness, type Harness } from './support.ts';

let h: Harness;
let guarded: Connectors;
beforeAll(async () => {
  h = await startHarness();
  guarded = createConnectors({ requestTimeoutMs: 1_000, allowPrivateNetworks: false, resumeMaxBytes: 64 * 1024 });
});
afterAll(async () => {
  await guarded.close();
  await h.close();
});

describe('SSRF guard', () => {
  it.each([
    ['127.0.0.1', true],
    ['10.1.2.3', true],
    ['172.20.0.1', true],
    ['192.168.1.1', true],
    ['169.254.169.254', true],
    ['100.64.0.1', true],
    ['0.0.0.0', true],
    ['::1', true],
    ['fe80::1', true],
    ['fd00::1', true],
    ['::ffff:127.0.0.1', true],
    ['8.8.8.8', false],
    ['2606:4700:4700::1111', false],
    ['::ffff:8.8.8.8', false],
  ])('%s private=%s', (address, expected) => {
    expect(isPrivateAddress(address)).toBe(expected);
  });

  it('refuses a generic receiver on loopback, by IP literal and by a name resolving to it, before sending anything', async () => {
    const f = fixture(h, 'generic');
    const before = h.sandbox.state.stats.requests;
    await expect(guarded.deliver(f.app(), f.integration)).rejects.toMatchObject({ code: 'forbidden', retriable: false, context: expect.objectContaining({ ssrf: true }) });
    const byName = { ...f.integration, settings: { ...f.integration.settings, url: f.integration.settings.url.replace('127.0.0.1', 'localhost') } };
    await expect(guarded.deliver(f.app(), byName)).rejects.toMatchObject({ code: 'forbidden', retriable: false });
    expect(h.sandbox.state.stats.requests).toBe(before);
  });

  it('refuses an apiBaseUrl override and a resume URL pointing inward', async () => {
    const f = fixture(h, 'greenhouse', { settings: { apiVersion: 'v1' } });
    const viaName = { ...f.integration, apiBaseUrl: f.integration.apiBaseUrl!.replace('127.0.0.1', 'localhost') };
    await expect(guarded.deliver(f.app(), viaName)).rejects.toMatchObject({ code: 'forbidden' });
    await expect(guarded.testConnection(viaName)).rejects.toMatchObject({ code: 'forbidden' });
  });

  it('checkBaseUrl answers the integrations API up front', async () => {
    await expect(checkBaseUrl('http://169.254.169.254/latest/meta-data', false)).rejects.toMatchObject({ code: 'forbidden' });
    await expect(checkBaseUrl('http://localhost:8080/', false)).rejects.toMatchObject({ code: 'forbidden' });
    await expect(checkBaseUrl('ftp://example.org/', false)).rejects.toMatchObject({ code: 'validation_failed' });
    await expect(checkBaseUrl('https://user:pw@example.org/', false)).rejects.toMatchObject({ code: 'validation_failed' });
    await expect(checkBaseUrl('http://localhost:8080/', true)).resolves.toBeUndefined();
  });
});
