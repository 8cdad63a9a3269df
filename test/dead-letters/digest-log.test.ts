/**
 * Issue 12: the alert consumer SIGKILLed between the SMTP send and the offset commit must not report
 * a dead letter twice. Real processes (consumers/cli.ts) SIGKILLed at the step under test by the
 * ALERT_TEST_CRASH_POINT hook, then restarted; every dead letter is counted at the mail catcher.
 * Plus two claimers of overlapping offsets, straight on the digest log.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createAlertConsumer, type AlertConsumer } from '../../consumers/alerts/index.ts';
import { Digest, factOf } from '../../consumers/alerts/digest.ts';
import { createDigestLog } from '../../consumers/alerts/digest-log.ts';
import { createPool } from '../../lib/db.ts';
import { withAdmin } from '../../lib/kafka/index.ts';
import { mailbox, type MailMessage } from '../../dev/mail-catcher.ts';
import { uniqueName } from '../support/config.ts';
import { committedOffsets, spawnConsumer, startDeadLetterStack, waitFor, type DeadLetterStack } from './support.ts';
import type { ChildProcess } from 'node:child_process';

const stacks: DeadLetterStack[] = [];
const consumers: AlertConsumer[] = [];
const children: ChildProcess[] = [];
const pools: Array<ReturnType<typeof createPool>> = [];

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
  await Promise.all(consumers.map((c) => c.close()));
  await Promise.all(stacks.map((s) => s.close()));
  await Promise.all(pools.map((p) => p.end()));
});

async function stack(): Promise<DeadLetterStack> {
  const s = await startDeadLetterStack({ ALERT_WINDOW_MS: '1500' });
  stacks.push(s);
  return s;
}

function pool(s: DeadLetterStack): ReturnType<typeof createPool> {
  const p = createPool(s.config.database, { max: 2 });
  pools.push(p);
  return p;
}

function killedBySelf(child: ChildProcess): Promise<NodeJS.Signals | null> {
  return new Promise((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
}

/** Application ids listed in a digest's text (`applications: a, b, …`). */
function applicationIdsOf(mail: MailMessage): string[] {
  return [...mail.text.matchAll(/^ {3}applications: (.+)$/gm)].flatMap((m) => m[1]!.replace(/ and \d+ more$/, '').split(', '));
}

/** Dead letters counted per distinct Message-ID (a resend of one digest is the same message). */
function countsByMessage(mails: MailMessage[]): Map<string, { count: number; copies: number; text: string }> {
  const out = new Map<string, { count: number; copies: number; text: string }>();
  for (const mail of mails) {
    const count = [...mail.text.matchAll(/^== \S+ \S+\/\S+: (\d+) \(/gm)].reduce((n, m) => n + Number(m[1]), 0);
    const seen = out.get(mail.messageId);
    if (seen) {
      expect(mail.text).toBe(seen.text); // a resend is the identical digest
      seen.copies++;
    } else out.set(mail.messageId, { count, copies: 1, text: mail.text });
  }
  return out;
}

async function fullyCommitted(s: DeadLetterStack, groupId: string): Promise<boolean> {
  const high = await withAdmin(s.kafka, (admin) => admin.fetchTopicOffsets(s.config.topics.dlq));
  const committed = await committedOffsets(s.kafka, groupId, s.config.topics.dlq);
  return high.every((h) => Number(h.high) === 0 || committed.get(h.partition) === Number(h.high));
}

describe('digest log: a dead letter is reported once, whatever crashes', () => {
  it('SIGKILL after SMTP accepted the digest and before the offset commit: the restarted process reports each dead letter once', async () => {
    const s = await stack();
    const groupId = uniqueName('alerts');
    const company = uniqueName('umbrella');
    const box = mailbox(s.config.alerts.mailApiUrl);
    const [ops] = s.config.alerts.to;

    const first = spawnConsumer(s.config, 'alerts', { ALERT_TEST_CRASH_POINT: 'after-mark' }, ['--group', groupId]);
    children.push(first);
    const died = killedBySelf(first);
    // Three companies: a digest lists up to 20 application ids per group, and every id is checked below.
    const batch1 = Array.from({ length: 30 }, (_, i) => ({ event: s.event(`${company}-${i % 3}`, 'lever'), code: 'unavailable' as const, status: 503 }));
    await s.publish(await s.deadLetters(batch1));
    expect(await died).toBe('SIGKILL');
    // The window of issue 12: the digest is at the catcher, nothing is committed.
    const sent = await waitFor('the first digest', async () => ((await box.to(ops!)).length ? box.to(ops!) : undefined), 10_000);
    expect(sent).toHaveLength(1);
    expect([...(await committedOffsets(s.kafka, groupId, s.config.topics.dlq)).values()].every((o) => o === -1)).toBe(true);

    // Restarted: it re-reads all 30, skips them (a digest counted them), commits past them.
    const second = spawnConsumer(s.config, 'alerts', {}, ['--group', groupId]);
    children.push(second);
    await waitFor('offsets committed past the reported records', () => fullyCommitted(s, groupId), 60_000, 500);
    const batch2 = Array.from({ length: 7 }, () => ({ event: s.event(`${company}-0`, 'lever'), code: 'unavailable' as const, status: 503 }));
    await s.publish(await s.deadLetters(batch2));
    const total = async (): Promise<number> => [...countsByMessage(await box.to(ops!)).values()].reduce((n, c) => n + c.count, 0);
    await waitFor('all 37 dead letters in digests', async () => (await total()) >= 37, 60_000, 500);
    await new Promise((r) => setTimeout(r, 3_000)); // two more windows: nothing else may arrive
    const all = await box.to(ops!);
    const counts = [...countsByMessage(all).values()];
    expect(counts.reduce((n, c) => n + c.count, 0)).toBe(37);
    expect(counts.every((c) => c.copies === 1)).toBe(true);
    const ids = all.flatMap(applicationIdsOf);
    expect(ids.sort()).toEqual([...batch1, ...batch2].map((i) => i.event.applicationId).sort());
    await waitFor('offsets committed', () => fullyCommitted(s, groupId), 30_000, 500);
  }, 150_000);

  it('SIGKILL between SMTP and the mark: another process sends the same digest (same Message-ID, same text), and counts nothing twice', async () => {
    const s = await stack();
    const groupId = uniqueName('alerts');
    const company = uniqueName('initech');
    const box = mailbox(s.config.alerts.mailApiUrl);
    const [ops] = s.config.alerts.to;
    const db = pool(s);

    const first = spawnConsumer(s.config, 'alerts', { ALERT_TEST_CRASH_POINT: 'after-smtp' }, ['--group', groupId]);
    children.push(first);
    const died = killedBySelf(first);
    const batch1 = Array.from({ length: 12 }, () => ({ event: s.event(company, 'workable'), code: 'auth_failed' as const, status: 401 }));
    await s.publish(await s.deadLetters(batch1));
    expect(await died).toBe('SIGKILL');
    // Killed after SMTP took its first digest's mail, before marking it: claimed, not sent.
    const { rows } = await db.query<{ id: string; sent_at: Date | null }>('SELECT id, sent_at FROM alert_digests WHERE consumer_group = $1', [groupId]);
    expect(rows).toEqual([{ id: expect.any(String), sent_at: null }]);
    const crashed = rows[0]!.id;
    expect((await box.to(ops!)).map((m) => m.messageId)).toEqual([`digest.${crashed}.0@ats-relay`]);
    // Its lease runs out (2 minutes in production; here at once).
    await db.query('UPDATE alert_digests SET claimed_until = now() WHERE consumer_group = $1', [groupId]);

    const c = createAlertConsumer({ config: s.config, logger: s.logger, options: { groupId, windowMs: 1_500, recoveryIntervalMs: 500, initialBackoffMs: 300, maxBackoffMs: 1_000 } });
    consumers.push(c);
    await c.start();
    await waitFor('the crashed digest marked sent by the second process', async () => (await db.query('SELECT 1 FROM alert_digests WHERE id = $1 AND sent_at IS NOT NULL', [crashed])).rowCount === 1, 30_000);
    await waitFor('offsets committed past the reported records', () => fullyCommitted(s, groupId), 30_000, 500);
    const batch2 = Array.from({ length: 4 }, () => ({ event: s.event(company, 'workable'), code: 'auth_failed' as const, status: 401 }));
    await s.publish(await s.deadLetters(batch2));
    const total = async (): Promise<number> => [...countsByMessage(await box.to(ops!)).values()].reduce((n, c) => n + c.count, 0);
    await waitFor('all 16 dead letters in digests', async () => (await total()) >= 16, 30_000, 500);
    await waitFor('offsets committed', () => fullyCommitted(s, groupId), 30_000, 500);
    await new Promise((r) => setTimeout(r, 3_000)); // two more windows: nothing else may arrive

    const all = await box.to(ops!);
    const byMessage = countsByMessage(all);
    expect([...byMessage.values()].reduce((n, m) => n + m.count, 0)).toBe(16);
    // The crashed digest was e-mailed twice (SMTP had it when the process died), as one message; no other twice.
    expect(byMessage.get(`digest.${crashed}.0@ats-relay`)?.copies).toBe(2);
    expect([...byMessage.entries()].filter(([id]) => id !== `digest.${crashed}.0@ats-relay`).every(([, m]) => m.copies === 1)).toBe(true);
    expect([...byMessage.keys()].every((id) => /^digest\.[0-9a-f]{32}\.0@ats-relay$/.test(id))).toBe(true);
    expect(new Set(all.flatMap(applicationIdsOf))).toEqual(new Set([...batch1, ...batch2].map((i) => i.event.applicationId)));
  }, 150_000);

  it('two processes claiming overlapping offsets: the second reports only what the first did not', async () => {
    const s = await stack();
    const log = createDigestLog(pool(s));
    const group = uniqueName('alerts');
    const topic = s.config.topics.dlq;
    const limits = { maxSamples: 3, maxApplicationIds: 100 };
    const digestOf = (from: number, to: number): Digest => {
      const d = new Digest(limits);
      for (let o = from; o <= to; o++) {
        d.add(factOf({ topic, partition: 0, offset: String(o), timestamp: String(Date.now()), headers: { 'ats-error-code': 'unavailable' } }, { companyId: 'c1', platform: 'lever', applicationId: `app-${o}` }), Date.now());
      }
      return d;
    };
    const render = (d: Digest) => [{ to: ['ops@localhost'], subject: `${d.total}`, text: `${d.total}`, html: '', audience: 'ops' }];
    // Both read offsets 0–9; the second, a new owner after a rebalance, read on to 14.
    const a = await log.claim(group, digestOf(0, 9), render, 60_000);
    const b = await log.claim(group, digestOf(0, 14), render, 60_000);
    expect(a.claimed?.records).toBe(10);
    expect(b.claimed?.records).toBe(5);
    expect(b.digest.ranges()).toEqual([{ topic, partition: 0, firstOffset: '10', lastOffset: '14' }]);
    expect(b.claimed?.mails[0]?.subject).toBe('5');
    // All of it counted already: nothing to claim.
    const c = await log.claim(group, digestOf(3, 12), render, 60_000);
    expect(c.claimed).toBeUndefined();
    expect(c.digest.empty).toBe(true);
    expect(await log.coveredUpTo(group, topic, 0)).toBe(14);
    // The same ranges give the same digest id, another group has its own coverage.
    expect(await log.coveredUpTo(uniqueName('other'), topic, 0)).toBeUndefined();
  });
});
