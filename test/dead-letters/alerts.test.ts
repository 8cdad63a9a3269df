/**
 * The alert consumer on the real stack (Kafka, registry, maildev SMTP): digests read back from the
 * mail server — one per window with exact counts per group, nothing lost while SMTP is down, a
 * bounded number of mails in a storm, no double counting after a restart.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { createAlertConsumer, type AlertConsumer } from '../../consumers/alerts/index.ts';
import type { AlertOptions } from '../../consumers/alerts/options.ts';
import { withAdmin } from '../../lib/kafka/index.ts';
import { uniqueName } from '../support/config.ts';
import { mailbox, type MailMessage } from '../../dev/mail-catcher.ts';
import { committedOffsets, exited, freePort, startDeadLetterStack, startOfWindow, waitFor, type DeadLetterSpec, type DeadLetterStack } from './support.ts';

const stacks: DeadLetterStack[] = [];
const consumers: AlertConsumer[] = [];
const children: ChildProcess[] = [];

afterAll(async () => {
  await Promise.all(consumers.map((c) => c.close()));
  await Promise.all(stacks.map((s) => s.close()));
  for (const child of children) {
    child.kill('SIGTERM');
    await exited(child);
  }
});

async function stack(overrides: Record<string, string> = {}): Promise<DeadLetterStack> {
  const s = await startDeadLetterStack(overrides);
  stacks.push(s);
  return s;
}

function alerts(s: DeadLetterStack, options: Partial<AlertOptions>, config = s.config): AlertConsumer {
  const c = createAlertConsumer({ config, logger: s.logger, options: { groupId: uniqueName('alerts'), initialBackoffMs: 300, maxBackoffMs: 1_000, drainTimeoutMs: 3_000, ...options } });
  consumers.push(c);
  return c;
}

/** `== <company> <platform>/<code>: <n>` lines of a digest's text part. */
function countsOf(mail: MailMessage): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of mail.text.matchAll(/^== (\S+ \S+\/\S+): (\d+) \(/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

function sumCounts(mails: MailMessage[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const mail of mails) for (const [k, n] of Object.entries(countsOf(mail))) out[k] = (out[k] ?? 0) + n;
  return out;
}

async function fullyCommitted(s: DeadLetterStack, groupId: string): Promise<boolean> {
  const high = await withAdmin(s.kafka, (admin) => admin.fetchTopicOffsets(s.config.topics.dlq));
  const committed = await committedOffsets(s.kafka, groupId, s.config.topics.dlq);
  return high.every((h) => Number(h.high) === 0 || committed.get(h.partition) === Number(h.high));
}

describe('alert digests', () => {
  it('a burst across two companies: one digest per window with exact counts per group, plus each company its own', async () => {
    const companyA = uniqueName('acme');
    const companyB = uniqueName('globex');
    const recipientB = `${uniqueName('globex-ops')}@localhost`;
    const s = await stack({ ALERT_COMPANY_RECIPIENTS: `${companyB}=${recipientB}` });
    const windowMs = 4_000;
    const c = alerts(s, { windowMs });
    await c.start();
    await waitFor('joined', async () => c.ready);
    const box = mailbox(s.config.alerts.mailApiUrl);
    const [ops] = s.config.alerts.to;

    const items = [
      ...Array.from({ length: 7 }, (): DeadLetterSpec => ({ event: s.event(companyA, 'greenhouse'), code: 'auth_failed', status: 401, message: 'Greenhouse said 401: invalid Harvest API key' })),
      ...Array.from({ length: 3 }, (): DeadLetterSpec => ({ event: s.event(companyA, 'greenhouse'), code: 'unavailable', status: 503 })),
      ...Array.from({ length: 5 }, (): DeadLetterSpec => ({ event: s.event(companyB, 'lever'), code: 'validation_failed', status: 422, message: 'Lever rejected <email>: "not an address"' })),
    ];
    await startOfWindow(windowMs);
    await s.publish(await s.deadLetters(items));
    const before = Date.now();

    const [mail] = await waitFor('the ops digest', async () => ((await box.to(ops!)).length ? box.to(ops!) : undefined), 20_000);
    expect(countsOf(mail!)).toEqual({
      [`${companyA} greenhouse/auth_failed`]: 7,
      [`${companyB} lever/validation_failed`]: 5,
      [`${companyA} greenhouse/unavailable`]: 3,
    });
    // Subject: total and the biggest groups first.
    expect(mail!.subject).toBe(`[ats-relay] 15 dead letters: ${companyA} greenhouse/auth_failed ×7, ${companyB} lever/validation_failed ×5, ${companyA} greenhouse/unavailable ×3`);
    expect(mail!.text).toContain('Greenhouse said 401: invalid Harvest API key');
    // The wording says what happened: refused at once (401, 422) vs retries exhausted (503).
    expect(mail!.text).toContain('15 applications are in the dead-letter queue: 12 refused at once');
    expect(mail!.text).toContain('3 exhausted their retries');
    expect(mail!.text).toContain(`== ${companyA} greenhouse/auth_failed: 7 (refused at once)`);
    expect(mail!.text).toContain(`== ${companyA} greenhouse/unavailable: 3 (retries exhausted)`);
    expect(mail!.text).toContain(`npm run redrive -- --company ${companyA} --platform greenhouse --error-code auth_failed --since `);
    expect(mail!.text).toContain(`s3://${s.config.s3.bucket}/${s.config.s3.prefix}/${s.config.topics.dlq}/dt=`);
    for (const item of items.filter((i) => i.code === 'auth_failed')) expect(mail!.text).toContain(item.event.applicationId);
    expect(mail!.html).toContain('&lt;email&gt;: &quot;not an address&quot;'); // peer text escaped in HTML
    expect(mail!.html).toContain('<table');

    // The company's own digest: its groups only.
    const [own] = await waitFor('the company digest', async () => ((await box.to(recipientB)).length ? box.to(recipientB) : undefined), 10_000);
    expect(countsOf(own!)).toEqual({ [`${companyB} lever/validation_failed`]: 5 });
    expect(own!.text).not.toContain(companyA);

    await waitFor('offsets committed after the digest', () => fullyCommitted(s, c.groupId), 10_000);
    // One digest per window: nothing more arrives in the next windows.
    await new Promise((r) => setTimeout(r, Math.max(0, before + 2 * windowMs - Date.now())));
    expect(await box.to(ops!)).toHaveLength(1);
  });

  it('SMTP down for a while: the digest is kept, arrives once SMTP is up, offsets committed only then', async () => {
    const smtpPort = await freePort();
    const webPort = await freePort();
    const s = await stack({ SMTP_URL: `smtp://127.0.0.1:${smtpPort}` });
    const c = alerts(s, { windowMs: 1_000 });
    await c.start();
    await waitFor('joined', async () => c.ready);
    const company = uniqueName('initech');
    await s.publish(await s.deadLetters(Array.from({ length: 12 }, () => ({ event: s.event(company, 'workable'), code: 'unavailable', status: 503 }))));

    await waitFor('SMTP failures', async () => ((await c.metrics.smtpFailures.get()).values[0]?.value ?? 0) >= 3, 20_000);
    expect([...(await committedOffsets(s.kafka, c.groupId, s.config.topics.dlq)).values()].every((o) => o === -1)).toBe(true);
    expect(c.pending).toBe(12);

    // SMTP comes up: a second maildev on the port the consumer keeps trying.
    const bin = 'node_modules/maildev/dist/bin/maildev.js';
    const maildev = spawn(process.execPath, [bin, '--smtp', String(smtpPort), '--web', String(webPort), '--ip', '127.0.0.1', '--web-ip', '127.0.0.1'], { stdio: 'ignore' });
    children.push(maildev);
    const box = mailbox(`http://127.0.0.1:${webPort}`);
    const [ops] = s.config.alerts.to;
    const mails = await waitFor('the digest after SMTP recovered', async () => ((await box.to(ops!).catch(() => [])).length ? box.to(ops!) : undefined), 30_000);
    expect(sumCounts(mails)).toEqual({ [`${company} workable/unavailable`]: 12 });
    await waitFor('offsets committed', () => fullyCommitted(s, c.groupId), 10_000);
    expect(c.pending).toBe(0);
  });

  it('a storm of 100 000 dead letters: a bounded number of mails whose counts add up exactly', async () => {
    const s = await stack();
    const rateWindowMs = 8_000;
    const c = alerts(s, { windowMs: 500, maxDigests: 2, rateWindowMs });
    await c.start();
    await waitFor('joined', async () => c.ready);
    const [a, b] = [uniqueName('hooli'), uniqueName('pied-piper')];
    // A few distinct events, repeated: 60 000 for one group, 40 000 for another.
    const templates = await s.deadLetters([
      { event: s.event(a, 'ashby'), code: 'unavailable', status: 503 },
      { event: s.event(b, 'greenhouse'), code: 'rate_limited', status: 429 },
    ]);
    const messages = Array.from({ length: 100_000 }, (_, i) => (i % 5 < 3 ? templates[0]! : templates[1]!));
    const started = Date.now();
    await s.publish(messages);

    const box = mailbox(s.config.alerts.mailApiUrl);
    const [ops] = s.config.alerts.to;
    const mails = await waitFor(
      'every dead letter counted in a sent digest',
      async () => {
        const got = await box.to(ops!);
        const sum = Object.values(sumCounts(got)).reduce((x, y) => x + y, 0);
        return sum >= 100_000 ? got : undefined;
      },
      50_000,
      500,
    );
    const elapsed = Date.now() - started;
    expect(sumCounts(mails)).toEqual({ [`${a} ashby/unavailable`]: 60_000, [`${b} greenhouse/rate_limited`]: 40_000 });
    // The cap: never 3 digests within one rate window (mail times have 1 s resolution), however many
    // 500 ms windows the storm spanned; deferred windows carried their counts over.
    const times = mails.map((m) => m.date).sort((x, y) => x - y);
    for (let i = 2; i < times.length; i++) expect(times[i]! - times[i - 2]!).toBeGreaterThanOrEqual(rateWindowMs - 1_000);
    expect(mails.length).toBeLessThanOrEqual(2 * Math.ceil(elapsed / rateWindowMs));
    expect(mails.length).toBeLessThan(Math.floor(elapsed / 500)); // far fewer mails than windows
    await waitFor('offsets committed', () => fullyCommitted(s, c.groupId), 10_000);
  }, 90_000);

  it('after a restart, records re-read are counted once', async () => {
    const s = await stack();
    const groupId = uniqueName('alerts');
    const windowMs = 6_000;
    const company = uniqueName('umbrella');
    const first = alerts(s, { groupId, windowMs });
    await first.start();
    await waitFor('joined', async () => first.ready);
    await startOfWindow(windowMs);
    await s.publish(await s.deadLetters(Array.from({ length: 20 }, () => ({ event: s.event(company, 'lever'), code: 'unavailable', status: 503 }))));
    await waitFor('all 20 aggregated', async () => first.pending === 20, 5_000);
    await first.close(); // before the window ends: not sent, nothing committed
    expect([...(await committedOffsets(s.kafka, groupId, s.config.topics.dlq)).values()].every((o) => o === -1)).toBe(true);

    const second = alerts(s, { groupId, windowMs });
    await second.start();
    const box = mailbox(s.config.alerts.mailApiUrl);
    const [ops] = s.config.alerts.to;
    const mails = await waitFor('the digest', async () => ((await box.to(ops!)).length ? box.to(ops!) : undefined), 30_000);
    expect(mails).toHaveLength(1);
    expect(countsOf(mails[0]!)).toEqual({ [`${company} lever/unavailable`]: 20 });
    await waitFor('offsets committed', () => fullyCommitted(s, groupId), 10_000);
  });
});
