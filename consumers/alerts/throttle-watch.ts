/**
 * Long throttling alerted as such (issue 18): an integration whose throttling episode
 * (integration_throttling, written by the dispatcher: consumers/dispatcher/throttle-log.ts) has
 * lasted `afterMs` is e-mailed once per episode — "throttled since …, N deferred" — to the ops
 * recipients and the company's own. Nothing is dead-lettered: its records keep waiting for the ATS.
 *
 * Once per episode, across every alerts process: a process claims the episode's alert in one
 * UPDATE (a lease), sends, then marks it alerted. A process that dies between SMTP and the mark
 * leaves the lease to run out and another sends it again, with the same Message-ID (derived from the
 * integration and the episode's start). An episode whose last deferral and last due time are older
 * than `staleAfterMs` is over (nothing of it waits any more, so no delivery came to end it) and is ended here.
 */
import type { Pool } from '../../lib/db.ts';
import type { Logger } from '../../lib/logger.ts';
import type { Mail, Mailer } from './mailer.ts';
import { listThrottled, throttledOf, type ThrottledIntegration } from '../dispatcher/throttle-log.ts';
import { throttledLine } from './digest.ts';

export interface ThrottleWatchOptions {
  pool: Pool;
  mailer: Mailer;
  logger: Logger;
  /** Episode length that is alerted (ALERT_THROTTLED_AFTER_MS). */
  afterMs: number;
  /** How often episodes are checked. */
  intervalMs: number;
  /** How long a claimed alert may take before another process sends it. */
  leaseMs: number;
  /** An episode without a deferral for this long is over. */
  staleAfterMs: number;
  to: string[];
  companyRecipients: Record<string, string[]>;
}

export interface ThrottleWatch {
  /** Integrations throttled now (a digest's "throttled" section). */
  current(): Promise<ThrottledIntegration[]>;
  /** One round: end stale episodes, alert those past `afterMs`. Returns the alerts sent. */
  check(): Promise<number>;
  start(): void;
  close(): Promise<void>;
}

const iso = (ms: number): string => new Date(ms).toISOString();

export function throttleMessageId(t: Pick<ThrottledIntegration, 'integrationId' | 'throttledSince'>): string {
  return `<throttled.${t.integrationId.replace(/[^\w.-]/g, '_')}.${t.throttledSince}@ats-relay>`;
}

export function renderThrottleAlert(t: ThrottledIntegration, now: number): Omit<Mail, 'to'> {
  const hours = Math.floor((now - t.throttledSince) / 360_000) / 10;
  const who = t.integrationName ? `${t.integrationName} (${t.companyId} ${t.platform})` : `${t.integrationId} (${t.companyId} ${t.platform})`;
  const subject = `[ats-relay] integration ${who} throttled since ${iso(t.throttledSince)} (${t.deferrals} deferred)`;
  const lines = [
    `Integration ${who} has been throttled by its ATS for ${hours} h: ${throttledLine(t)}.`,
    '',
    'This is not a failure: nothing was dead-lettered. Its applications wait (deferred without using a retry) and are',
    'delivered at the pace the ATS allows once it lets them through. If it lasts, check the customer\'s rate limit or plan',
    'at the ATS, and ATS_RATE_LIMITS for this platform.',
    '',
    `integration id: ${t.integrationId}`,
    `last deferral: ${iso(t.lastDeferralAt)}`,
    t.nextAttemptAt !== undefined ? `next attempt: ${iso(t.nextAttemptAt)}` : '',
    '',
    'One mail per throttling episode: a new one only after the integration delivered again and is throttled anew.',
  ].filter((l, i, all) => l !== '' || all[i - 1] !== '');
  const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
  const html = `<!doctype html><html><body style="font-family:sans-serif">${lines
    .map((l) => (l ? `<p>${esc(l)}</p>` : ''))
    .join('\n')}</body></html>`;
  return { subject, text: lines.join('\n'), html, messageId: throttleMessageId(t) };
}

export function createThrottleWatch(opts: ThrottleWatchOptions): ThrottleWatch {
  const { pool, logger } = opts;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<number> | undefined;
  let closed = false;

  async function claimDue(): Promise<ThrottledIntegration[]> {
    const { rows } = await pool.query<Parameters<typeof throttledOf>[0]>(
      `UPDATE integration_throttling t SET alert_claimed_until = now() + $2 * interval '1 millisecond'
        WHERE t.ended_at IS NULL AND t.alerted_at IS NULL AND t.throttled_since <= now() - $1 * interval '1 millisecond'
          AND (t.alert_claimed_until IS NULL OR t.alert_claimed_until < now())
        RETURNING t.integration_id, (SELECT i.name FROM integrations i WHERE i.id::text = t.integration_id) AS name, t.company_id, t.platform,
                  t.throttled_since, t.last_deferral_at, t.deferrals::text, t.next_attempt_at, t.alerted_at`,
      [opts.afterMs, opts.leaseMs],
    );
    return rows.map(throttledOf);
  }

  async function round(): Promise<number> {
    const stale = await pool.query<{ integration_id: string }>(
      `UPDATE integration_throttling SET ended_at = now() WHERE ended_at IS NULL AND GREATEST(last_deferral_at, last_due_at) < now() - $1 * interval '1 millisecond' RETURNING integration_id`,
      [opts.staleAfterMs],
    );
    if (stale.rowCount) logger.info({ integrations: stale.rows.map((r) => r.integration_id) }, 'throttling episodes over (no deferral for a while)');
    let sent = 0;
    for (const t of await claimDue()) {
      const mail = renderThrottleAlert(t, Date.now());
      const recipients = [...opts.to, ...(opts.companyRecipients[t.companyId] ?? [])];
      try {
        // One mail per recipient list (ops, company), so a company never sees the ops addresses.
        if (opts.to.length) await opts.mailer.send({ ...mail, to: opts.to });
        const own = opts.companyRecipients[t.companyId];
        if (own?.length) await opts.mailer.send({ ...mail, to: own, messageId: mail.messageId!.replace('<throttled.', '<throttled.company.') });
      } catch (err) {
        // Release the claim: the next round (here or in another process) sends it again.
        logger.warn({ err: { message: (err as Error).message }, integrationId: t.integrationId }, 'SMTP did not accept the throttling alert; next round again');
        await pool.query('UPDATE integration_throttling SET alert_claimed_until = NULL WHERE integration_id = $1 AND throttled_since = $2', [t.integrationId, new Date(t.throttledSince)]);
        continue;
      }
      await pool.query('UPDATE integration_throttling SET alerted_at = now() WHERE integration_id = $1 AND throttled_since = $2 AND ended_at IS NULL', [t.integrationId, new Date(t.throttledSince)]);
      logger.warn({ integrationId: t.integrationId, companyId: t.companyId, throttledSince: iso(t.throttledSince), deferrals: t.deferrals, recipients: recipients.length }, 'integration throttled for long: alerted');
      sent++;
    }
    return sent;
  }

  function check(): Promise<number> {
    running ??= round().finally(() => (running = undefined));
    return running;
  }

  return {
    current: () => listThrottled(pool),
    check,
    start() {
      if (timer || closed) return;
      const tick = (): void => {
        check().catch((err: unknown) => logger.warn({ err }, 'throttling check failed; next round again'));
      };
      tick();
      timer = setInterval(tick, opts.intervalMs);
      timer.unref();
    },
    async close() {
      closed = true;
      clearInterval(timer);
      await running?.catch(() => undefined);
    },
  };
}
