import { afterAll, describe, expect, it } from 'vitest';
import { createIntegrationCache } from '../../registry/cache.ts';
import { createIntegrationRepository } from '../../registry/repository.ts';
import { createPool } from '../../lib/db.ts';
import { companyId, registryHarness, sampleIntegration } from './support.ts';

const h = registryHarness();
afterAll(() => h.close());

/** Counts the repository reads the cache lets through. */
function counting() {
  const reads = { integration: 0, mapping: 0 };
  const repo = createIntegrationRepository({ pool: h.pool, keyring: h.keyring });
  const counted = {
    ...repo,
    getIntegration: (id: string) => {
      reads.integration += 1;
      return repo.getIntegration(id);
    },
    findJobMapping: (id: string, jobId: string) => {
      reads.mapping += 1;
      return repo.findJobMapping(id, jobId);
    },
  };
  return { repo: counted, reads };
}

const until = async (check: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('integration read-through cache', () => {
  it('reads through once, serves hits, and expires after the TTL', async () => {
    let now = 1_000;
    const { repo, reads } = counting();
    const cache = createIntegrationCache({ repository: repo, ttlMs: 5_000, now: () => now });
    const created = await repo.createIntegration(companyId(), sampleIntegration('lever'));
    await repo.putJobMapping(created.id, 'job-1', 'posting-1');

    const [a, b] = await Promise.all([cache.getIntegration(created.id), cache.getIntegration(created.id)]);
    expect(a).toEqual(b);
    expect(a!.credentials).toEqual(created.credentials);
    expect(await cache.getJobMapping(created.id, 'job-1')).toBe('posting-1');
    expect(await cache.getJobMapping(created.id, 'job-1')).toBe('posting-1');
    expect(reads).toEqual({ integration: 1, mapping: 1 });

    now += 5_001;
    await cache.getIntegration(created.id);
    expect(reads.integration).toBe(2);
    await cache.close();
  });

  it('is invalidated by updates through the repository of the same process', async () => {
    const { repo, reads } = counting();
    const cache = createIntegrationCache({ repository: repo, ttlMs: 60_000 });
    const created = await repo.createIntegration(companyId(), sampleIntegration('workable'));
    expect((await cache.getIntegration(created.id))!.name).toBe(created.name);
    await repo.updateIntegration(created.id, 1, { name: 'renamed' });
    expect((await cache.getIntegration(created.id))!.name).toBe('renamed');
    expect(await cache.getJobMapping(created.id, 'job-9')).toBeNull();
    await repo.putJobMapping(created.id, 'job-9', 'SHORT9');
    expect(await cache.getJobMapping(created.id, 'job-9')).toBe('SHORT9');
    await repo.deleteIntegration(created.id);
    expect(await cache.getIntegration(created.id)).toBeNull();
    expect(reads.integration).toBe(3);
    await cache.close();
  });

  it('hears about changes made by another process through LISTEN/NOTIFY', async () => {
    const { repo } = counting();
    const cache = createIntegrationCache({ repository: repo, ttlMs: 60_000, listen: h.pool });
    await cache.start();
    // "Another process": its own pool and repository, so no in-process listener fires.
    const otherPool = createPool(h.config.database, { max: 2 });
    try {
      const other = createIntegrationRepository({ pool: otherPool, keyring: h.keyring });
      const created = await other.createIntegration(companyId(), sampleIntegration('ashby'));
      expect((await cache.getIntegration(created.id))!.enabled).toBe(true);
      await other.updateIntegration(created.id, 1, { enabled: false });
      await until(async () => (await cache.getIntegration(created.id))!.enabled === false);
    } finally {
      await otherPool.end();
      await cache.close();
    }
  });

  it('bounds its size', async () => {
    const { repo } = counting();
    const cache = createIntegrationCache({ repository: repo, maxEntries: 3 });
    for (let n = 0; n < 5; n += 1) await cache.getJobMapping('00000000-0000-4000-8000-000000000000', `job-${n}`);
    expect(cache.size).toBe(3);
    await cache.close();
  });
});
