/**
 * Issue 18: throttling is shown apart from failures and alerted when it lasts. The throttle log
 * (what the dispatcher writes) on the real PostgreSQL; the alerts' watch e-mails a long episode once,
 * however many alerts processes look; a digest carries a "throttled" section that counts no dead letter.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createAlertConsumer, type AlertConsumer } from '../../consumers/alerts/index.ts';
import { createThrottleWatch } from '../../consumers/alerts/throttle-watch.ts';
import { createThrottleLog, listThrottled } from '../../consumers/dispatcher/throttle-log.ts';
import { createPool, type Pool } from '../../lib/db.ts';
import { mailbox } from '../../dev/mail-catcher.ts';
import { createMailer } from '../../consumers/alerts/mailer.ts';
import { uniqueName } from '../support/config.ts';
import { startDeadLetterStack, startOfWindow, waitFor, type DeadLetterStack } from './support.ts';

const stacks: DeadLetterStack[] = [];
const consumers: AlertConsumer[] = [];
const pools: Pool[] = [];
const closers: Array<() => unknown> = [];

afterAll(async () => {
  await Promise.all(consumers.map((c) => c.close()));
  for (const close of closers) await close();
  await Promise.all(stacks.map((s) => s.close()));
  await Promise.all(pools.map((p) => p.end()));
});

async function setup(overrides: Record<string, string> = {}): Promise<{ s: DeadLetterStack; pool: Pool }> {
  const s = await startDeadLetterStack(overrides);
  stacks.push(s);
  const pool = createPool(s.config.database, { max: 3 });
  pools.push(pool);
  return { s, pool };
}

describe('throttling episodes', () => {
  it('the dispatcher side: deferrals tallied into one row per integration, ended by a delivery after the last due time, never reopened by a late flush', async () => {
    const { s, pool } = await setup();
    let clock = Date.now();
    const log = createThrottleLog({ pool, logger: s.logger, now: () => clock });
    const integrationId = uniqueName('int');
    const who = { integrationId, companyId: uniqueName('acme'), platform: 'greenhouse' };
    const start = clock;
    log.deferred(who, start + 4_000);
    clock += 100;
    log.deferred(who, start + 2_000);
    clock += 100;
    log.deferred(who, start + 9_000);
    log.delivered(integrationId); // before the deferred records were due: they still wait
    await log.flush();
    const [row] = await listThrottled(pool, { integrationIds: [integrationId] });
    expect(row).toMatchObject({ ...who, throttledSince: start, lastDeferralAt: start + 200, deferrals: 3, nextAttemptAt: start + 2_000, alertedAt: undefined });

    // A second process (another tier) adds to the same episode.
    const other = createThrottleLog({ pool, logger: s.logger, now: () => clock });
    clock += 1_000;
    other.deferred(who, start + 12_000);
    await other.flush();
    expect((await listThrottled(pool, { integrationIds: [integrationId] }))[0]).toMatchObject({ throttledSince: start, deferrals: 4, lastDeferralAt: start + 1_200 });

    // A delivery after every deferred record was due ends it.
    clock = start + 12_500;
    log.delivered(integrationId);
    await log.flush();
    expect(await listThrottled(pool, { integrationIds: [integrationId] })).toEqual([]);
    // A deferral from before the end, flushed late by a third process, does not reopen it.
    const late = createThrottleLog({ pool, logger: s.logger, now: () => start + 12_000 });
    late.deferred(who, start + 13_000);
    await late.flush();
    expect(await listThrottled(pool, { integrationIds: [integrationId] })).toEqual([]);
    // A deferral after it starts a new episode, counted from zero.
    clock = start + 20_000;
    log.deferred(who, start + 21_000);
    await log.flush();
    expect((await listThrottled(pool, { integrationIds: [integrationId] }))[0]).toMatchObject({ throttledSince: start + 20_000, deferrals: 1 });
  });

  it('an integration throttled past ALERT_THROTTLED_AFTER_MS is e-mailed once per episode, by one of several alerts processes; nothing is dead-lettered', async () => {
    const company = uniqueName('globex');
    const companyTo = `${uniqueName('globex-ops')}@localhost`;
    const { s, pool } = await setup({ ALERT_COMPANY_RECIPIENTS: `${company}=${companyTo}` });
    const integrationId = uniqueName('int');
    const log = createThrottleLog({ pool, logger: s.logger, now: () => Date.now() - 2 * 3_600_000 });
    log.deferred({ integrationId, companyId: company, platform: 'lever' }, Date.now() + 60_000);
    await log.flush();
    const recent = createThrottleLog({ pool, logger: s.logger });
    for (let i = 0; i < 4; i++) recent.deferred({ integrationId, companyId: company, platform: 'lever' }, Date.now() + 60_000);
    await recent.flush();
    // A second integration throttled for a minute only: not alerted.
    const young = uniqueName('int');
    recent.deferred({ integrationId: young, companyId: company, platform: 'lever' }, Date.now() + 5_000);
    await recent.flush();

    const watches = [0, 1, 2].map(() => {
      const mailer = createMailer(s.config.alerts);
      const w = createThrottleWatch({
        pool, mailer, logger: s.logger, afterMs: s.config.alerts.throttledAfterMs, intervalMs: 60_000, leaseMs: 60_000, staleAfterMs: 15 * 60_000,
        to: s.config.alerts.to, companyRecipients: s.config.alerts.companyRecipients,
      });
      closers.push(() => w.close(), () => mailer.close());
      return w;
    });
    // Three alerts processes look at once, then again.
    const sent = (await Promise.all(watches.map((w) => w.check()))).reduce((a, b) => a + b, 0) + (await Promise.all(watches.map((w) => w.check()))).reduce((a, b) => a + b, 0);
    expect(sent).toBe(1);

    const box = mailbox(s.config.alerts.mailApiUrl);
    const [ops] = s.config.alerts.to;
    const mails = await waitFor('the throttling alert', async () => ((await box.to(ops!)).length ? box.to(ops!) : undefined), 10_000);
    expect(mails).toHaveLength(1);
    expect(mails[0]!.subject).toMatch(new RegExp(`^\\[ats-relay\\] integration ${integrationId} \\(${company} lever\\) throttled since \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z \\(5 deferred\\)$`));
    expect(mails[0]!.text).toContain('nothing was dead-lettered');
    expect(mails[0]!.messageId).toMatch(new RegExp(`^throttled\\.${integrationId}\\.\\d+@ats-relay$`));
    expect(await waitFor('the company copy', async () => ((await box.to(companyTo)).length ? box.to(companyTo) : undefined), 10_000)).toHaveLength(1);
    expect((await listThrottled(pool, { integrationIds: [integrationId] }))[0]!.alertedAt).toBeDefined();

    // The episode ends (a delivery after its due times) and a new one starts: alerted again only once it is long.
    await pool.query(`UPDATE integration_throttling SET ended_at = now() WHERE integration_id = $1`, [integrationId]);
    const again = createThrottleLog({ pool, logger: s.logger, now: () => Date.now() + 1_000 });
    again.deferred({ integrationId, companyId: company, platform: 'lever' }, Date.now() + 60_000);
    await again.flush();
    expect(await watches[0]!.check()).toBe(0);
    await pool.query(`UPDATE integration_throttling SET throttled_since = throttled_since - interval '2 hours' WHERE integration_id = $1`, [integrationId]);
    expect(await watches[1]!.check()).toBe(1);
    expect(await box.to(ops!)).toHaveLength(2);
  });

  it('a digest has a "throttled" section apart from its dead letters, which it alone counts', async () => {
    const company = uniqueName('hooli');
    const { s, pool } = await setup();
    const log = createThrottleLog({ pool, logger: s.logger });
    const integrationId = uniqueName('int');
    for (let i = 0; i < 3; i++) log.deferred({ integrationId, companyId: company, platform: 'workable' }, Date.now() + 30_000);
    await log.flush();

    // A 4 s window, joined first and entered at its start: the four records reach the consumer in
    // separate fetches (one per partition), and a 1 s window once split them across two digests.
    const windowMs = 4_000;
    const c = createAlertConsumer({ config: s.config, logger: s.logger, options: { groupId: uniqueName('alerts'), windowMs, initialBackoffMs: 300, maxBackoffMs: 1_000 } });
    consumers.push(c);
    await c.start();
    await waitFor('joined', async () => c.ready);
    const deadLetters = await s.deadLetters(Array.from({ length: 4 }, () => ({ event: s.event(company, 'workable'), code: 'auth_failed' as const, status: 401 })));
    await startOfWindow(windowMs);
    await s.publish(deadLetters);
    const box = mailbox(s.config.alerts.mailApiUrl);
    const [ops] = s.config.alerts.to;
    const [mail] = await waitFor('the digest', async () => ((await box.to(ops!)).length ? box.to(ops!) : undefined), 20_000);
    expect(mail!.subject).toBe(`[ats-relay] 4 dead letters: ${company} workable/auth_failed ×4`);
    expect(mail!.text).toContain('4 applications are in the dead-letter queue');
    const section = mail!.text.slice(mail!.text.indexOf('-- Throttled'));
    expect(section).toMatch(/^-- Throttled \(not failures: [^\n]*none is in the dead-letter queue\):\n/);
    // Other tests' integrations may be throttled too (one database): ours is one line of the section.
    expect(section).toMatch(new RegExp(`^   ${company} workable integration ${integrationId}: throttled since \\S+, 3 deferred, next attempt \\S+$`, 'm'));
    expect(mail!.html).toContain('<h3>Throttled (not failures');
  });
});
