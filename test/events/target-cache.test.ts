/**
 * The direct publisher's delivery-target cache on real PostgreSQL: answers are cached (a write that
 * bypasses the registry's notification is not seen), every registry write through the repository
 * (another process, as far as the cache knows: it only hears NOTIFY) is seen without waiting for the
 * TTL, concurrent lookups share one query, and a publisher sees a new job mapping.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CHANGE_CHANNEL } from '../../registry/integrations.ts';
import { createApplicationPublisher } from '../../producers/publisher.ts';
import { sampleApplications } from '../../dev/sample-application.ts';
import { createTargetCache, type TargetCache } from '../../producers/target-cache.ts';
import { sampleIntegration } from '../registry/support.ts';
import { companyWith, eventsHarness } from './support.ts';

const h = eventsHarness();
let cache: TargetCache;
/** Markers sent through the change channel: how many caches have yet to hear each, and who waits. */
const heard = new Map<string, { left: number; resolve(): void }>();
/** Change notifications heard by any cache of this file, whoever wrote them. */
let notifications = 0;
const onChange = (payload: string): void => {
  notifications++;
  const w = heard.get(payload);
  if (w && --w.left === 0) w.resolve();
};

/**
 * Runs `attempt` until no change notification arrived while it ran, and returns its result. Other
 * test files write the same database at the same time, and any notification clears every entry (by
 * design: it names an integration, not a company), so a cached answer can be dropped between two
 * lookups and look as if it never was cached (CI, 3 December).
 */
async function withoutNotifications<T>(attempt: () => Promise<T>): Promise<T> {
  for (let i = 1; ; i++) {
    const before = notifications;
    const result = await attempt();
    if (notifications === before) return result;
    if (i === 20) throw new Error('20 attempts in a row overlapped a registry change notification');
  }
}

/** Writes job-1's mapping behind the registry's back: no NOTIFY, so no cache hears of it. */
async function setSilently(integrationId: string, atsJobId: string): Promise<void> {
  await h.pool.query('UPDATE job_mappings SET external_job_id = $3 WHERE integration_id = $1 AND job_id = $2', [integrationId, 'job-1', atsJobId]);
}

/**
 * job-1's answer from `c` after it was looked up with mapping 'ats-job-1' and then changed to 'silent'
 * behind the registry's back: 'ats-job-1' while the first answer is cached.
 */
function answerAfterSilentWrite(c: TargetCache, companyId: string, integrationId: string): Promise<string | null> {
  return withoutNotifications(async () => {
    await setSilently(integrationId, 'ats-job-1');
    c.clear();
    await c.targets(companyId, 'job-1');
    await setSilently(integrationId, 'silent');
    return (await c.targets(companyId, 'job-1'))[0]!.atsJobId;
  });
}

/**
 * Returns once every one of `listening` caches heard all change notifications committed so far:
 * notifications arrive in commit order, so a marker sent now comes after them. Set-up writes notify
 * too, and a notification that lands after a lookup would clear what the test wants to see cached.
 */
async function caughtUp(listening = 1): Promise<void> {
  const marker = `marker-${randomUUID()}`;
  const seen = new Promise<void>((resolve) => heard.set(marker, { left: listening, resolve }));
  await h.pool.query('SELECT pg_notify($1, $2)', [CHANGE_CHANNEL, marker]);
  await seen;
  heard.delete(marker);
}

beforeAll(async () => {
  await h.createTopics();
  cache = createTargetCache({ pool: h.pool, logger: h.logger, onChange });
  await cache.start();
});
afterAll(async () => {
  await cache.close();
  await h.close();
});

describe('delivery target cache', () => {
  it('keeps an answer until the registry notifies a change, then reads again', async () => {
    const company = await companyWith(h.repo, ['greenhouse'], ['job-1']);
    const integrationId = company.integrations[0]!.id;
    await caughtUp();
    expect(await cache.targets(company.companyId, 'job-1')).toEqual([{ integrationId, platform: 'greenhouse', atsJobId: 'ats-job-1' }]);

    // Behind the registry's back (no NOTIFY): the cached answer stands, which shows it is cached.
    expect(await answerAfterSilentWrite(cache, company.companyId, integrationId)).toBe('ats-job-1');

    // Through the repository (notifies): seen long before the 30 s TTL.
    await h.repo.putJobMapping(integrationId, 'job-1', 'ats-job-1b');
    await vi.waitFor(async () => expect((await cache.targets(company.companyId, 'job-1'))[0]!.atsJobId).toBe('ats-job-1b'), { timeout: 5_000, interval: 20 });

    // A new integration of the company (its id was in no cached key) is seen too.
    const added = await h.repo.createIntegration(company.companyId, sampleIntegration('lever'));
    await vi.waitFor(async () => expect((await cache.targets(company.companyId, 'job-1')).map((t) => t.integrationId)).toEqual([integrationId, added.id]), {
      timeout: 5_000,
      interval: 20,
    });

    // Disabled: gone from the answer.
    const current = await h.repo.getIntegration(integrationId);
    await h.repo.updateIntegration(integrationId, current!.version, { enabled: false });
    await vi.waitFor(async () => expect((await cache.targets(company.companyId, 'job-1')).map((t) => t.integrationId)).toEqual([added.id]), { timeout: 5_000, interval: 20 });
  });

  it('shares one query between concurrent lookups of the same company and job', async () => {
    const company = await companyWith(h.repo, ['greenhouse'], ['job-1']);
    await caughtUp();
    const spy = vi.spyOn(h.pool, 'query');
    try {
      const answers = await Promise.all(Array.from({ length: 20 }, () => cache.targets(company.companyId, 'job-1')));
      expect(new Set(answers).size).toBe(1);
      expect(answers[0]).toHaveLength(1);
      expect(spy).toHaveBeenCalledTimes(1);
    } finally {
      spy.mockRestore();
    }
  });

  it('expires an answer after its TTL even without a notification', async () => {
    let clock = 1_000;
    const short = createTargetCache({ pool: h.pool, logger: h.logger, ttlMs: 100, now: () => clock, onChange });
    await short.start();
    try {
      const company = await companyWith(h.repo, ['greenhouse'], ['job-1']);
      const integrationId = company.integrations[0]!.id;
      await caughtUp(2);
      expect(await answerAfterSilentWrite(short, company.companyId, integrationId)).toBe('ats-job-1');
      clock += 101;
      expect((await short.targets(company.companyId, 'job-1'))[0]!.atsJobId).toBe('silent');
    } finally {
      await short.close();
    }
  });

  it('lets a publisher see a job mapping added after it cached "no mapping"', async () => {
    const company = await companyWith(h.repo, ['greenhouse'], ['job-1']);
    const publisher = createApplicationPublisher({ kafka: h.config.kafka, registryUrl: h.config.schemaRegistry.url, topic: h.topic, pool: h.pool, logger: h.logger });
    await publisher.start();
    try {
      const apply = () => publisher.publishApplication(sampleApplications({ companyId: company.companyId, jobIds: ['job-2'], seed: 3 }).next());
      expect((await apply()).status).toBe('no-job-mapping');
      expect((await apply()).status).toBe('no-job-mapping');
      await h.repo.putJobMapping(company.integrations[0]!.id, 'job-2', 'ats-job-2');
      await vi.waitFor(async () => expect((await apply()).status).toBe('published'), { timeout: 5_000, interval: 50 });
    } finally {
      await publisher.close();
    }
  });
});
