/**
 * The durable record of digests (issue 12): which DLQ offsets each digest counted, its rendered
 * mails, and whether SMTP took them. Tables: db/migrations/018_throttling_and_digest_log.sql.
 *
 *   claim   one transaction, under a lock per (group, topic, partition): offsets another digest of
 *           the group already counted are taken out of this one (rebuilt without them), then the
 *           digest, its ranges and its rendered mails are written, with a lease
 *   send    each mail not yet sent, with a Message-ID derived from the digest id, the lease renewed
 *           before each attempt; each accepted mail is marked sent at once
 *   mark    the digest is marked sent; only then does the consumer commit its offsets
 *
 * A record inside a claimed range is never counted again by the group (the consumer skips it on
 * re-read), so a SIGKILL between SMTP and the offset commit no longer reports it twice. A claim whose
 * process died (lease past) is taken over by any alerts process of the group, which sends the stored
 * mails — the same text, the same Message-IDs. Guarantee: every dead letter is counted in exactly one
 * digest; a digest mail reaches SMTP at least once, twice only when the process died between the
 * server's acceptance and the mark (the resend is the identical message with the same Message-ID,
 * which mail clients and archives treat as one).
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Pool } from '../../lib/db.ts';
import { tpKey } from '../../lib/kafka/index.ts';
import type { Logger } from '../../lib/logger.ts';
import type { Mail, Mailer } from './mailer.ts';
import { sleep } from '../../lib/sleep.ts';
import type { Digest } from './digest.ts';

export interface DigestMail extends Mail {
  seq: number;
  audience: string;
  messageId: string;
  sent: boolean;
}

export interface ClaimedDigest {
  id: string;
  records: number;
  /** The claim token: a process that lost the claim (its lease ran out) can no longer renew it, and stops sending. */
  claimedBy: string;
  mails: DigestMail[];
}

export type RenderMails = (digest: Digest) => Array<Mail & { audience: string }>;

export interface DigestClaim {
  /** What is left of the digest once records other digests counted are out (maybe empty). */
  digest: Digest;
  /** Undefined when nothing was left to report. */
  claimed: ClaimedDigest | undefined;
}

export interface SentDigestRow {
  id: string;
  consumerGroup: string;
  records: number;
  claimedAt: Date;
  sentAt: Date | null;
  mails: number;
  ranges: Array<{ topic: string; partition: number; firstOffset: string; lastOffset: string }>;
}

export interface SendOptions {
  mailer: Mailer;
  logger: Logger;
  signal: AbortSignal;
  leaseMs: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  onMailSent?: (mail: DigestMail) => void;
  onSmtpFailure?: () => void;
  /** Test hook (options.crashPoint): called right after SMTP accepted a mail, before it is marked. */
  afterSmtp?: () => void;
}

export function messageIdOf(digestId: string, seq: number): string {
  return `<digest.${digestId}.${seq}@ats-relay>`;
}

/** Deterministic: the same group and offsets give the same id (and so the same Message-IDs). */
export function digestIdOf(group: string, ranges: ReturnType<Digest['ranges']>): string {
  const canonical = [...ranges].sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition).map((r) => `${r.topic}/${r.partition}/${r.firstOffset}-${r.lastOffset}`);
  return createHash('sha256').update(`${group}\n${canonical.join('\n')}`).digest('hex').slice(0, 32);
}

export function createDigestLog(pool: Pool) {
  async function mailsOf(id: string): Promise<DigestMail[]> {
    const { rows } = await pool.query<{ seq: number; audience: string; recipients: string[]; subject: string; body_text: string; body_html: string; message_id: string; sent_at: Date | null }>(
      'SELECT seq, audience, recipients, subject, body_text, body_html, message_id, sent_at FROM alert_digest_mails WHERE digest_id = $1 ORDER BY seq',
      [id],
    );
    return rows.map((r) => ({ seq: r.seq, audience: r.audience, to: r.recipients, subject: r.subject, text: r.body_text, html: r.body_html, messageId: r.message_id, sent: r.sent_at !== null }));
  }

  /** Extend the lease; false when another process holds the claim now or the digest is sent. */
  async function renew(claimed: ClaimedDigest, leaseMs: number): Promise<boolean> {
    const { rowCount } = await pool.query(`UPDATE alert_digests SET claimed_until = now() + $3 * interval '1 millisecond' WHERE id = $1 AND claimed_by = $2 AND sent_at IS NULL`, [
      claimed.id,
      claimed.claimedBy,
      leaseMs,
    ]);
    return (rowCount ?? 0) > 0;
  }

  return {
    renew,

    /** The highest offset of the partition that a digest of the group counted (claimed or sent). */
    async coveredUpTo(group: string, topic: string, partition: number): Promise<number | undefined> {
      const { rows } = await pool.query<{ last: string | null }>(
        'SELECT max(last_offset)::text AS last FROM alert_digest_ranges WHERE consumer_group = $1 AND topic = $2 AND partition = $3',
        [group, topic, partition],
      );
      return rows[0]?.last != null ? Number(rows[0].last) : undefined;
    },

    /** Claim a sealed digest (see the top of this file). Throws on a database error: call again. */
    async claim(group: string, sealed: Digest, render: RenderMails, leaseMs: number): Promise<DigestClaim> {
      let digest = sealed;
      for (;;) {
        if (digest.empty) return { digest, claimed: undefined };
        const ranges = digest.ranges().sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
        const client = await pool.connect();
        let covered: Map<string, number> | undefined;
        try {
          await client.query('BEGIN');
          // In a fixed order, so two claimers of overlapping partitions cannot deadlock.
          for (const r of ranges) await client.query('SELECT pg_advisory_xact_lock(hashtext($1), $2)', [`alert-digest:${group}:${r.topic}`, r.partition]);
          const { rows } = await client.query<{ topic: string; partition: number; last: string }>(
            `SELECT topic, partition, max(last_offset)::text AS last FROM alert_digest_ranges
              WHERE consumer_group = $1 AND (topic, partition) IN (SELECT * FROM unnest($2::text[], $3::int[]))
              GROUP BY topic, partition`,
            [group, ranges.map((r) => r.topic), ranges.map((r) => r.partition)],
          );
          const overlap = rows.filter((row) => {
            const mine = ranges.find((r) => r.topic === row.topic && r.partition === row.partition);
            return mine !== undefined && Number(row.last) >= Number(mine.firstOffset);
          });
          if (overlap.length) {
            covered = new Map(overlap.map((row) => [tpKey(row.topic, row.partition), Number(row.last)]));
            await client.query('ROLLBACK');
          } else {
            const id = digestIdOf(group, ranges);
            const claimedBy = randomUUID();
            const mails: DigestMail[] = render(digest).map((m, seq) => ({ ...m, seq, messageId: messageIdOf(id, seq), sent: false }));
            await client.query(`INSERT INTO alert_digests (id, consumer_group, records, claimed_by, claimed_until) VALUES ($1, $2, $3, $4, now() + $5 * interval '1 millisecond')`, [
              id,
              group,
              digest.total,
              claimedBy,
              leaseMs,
            ]);
            await client.query(
              `INSERT INTO alert_digest_ranges (digest_id, consumer_group, topic, partition, first_offset, last_offset)
               SELECT $1, $2, * FROM unnest($3::text[], $4::int[], $5::bigint[], $6::bigint[])`,
              [id, group, ranges.map((r) => r.topic), ranges.map((r) => r.partition), ranges.map((r) => r.firstOffset), ranges.map((r) => r.lastOffset)],
            );
            await client.query(
              `INSERT INTO alert_digest_mails (digest_id, seq, audience, recipients, subject, body_text, body_html, message_id)
               SELECT $1, m.seq, m.audience, ARRAY(SELECT json_array_elements_text(m.recipients::json)), m.subject, m.body_text, m.body_html, m.message_id
                 FROM unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
                   AS m(seq, audience, recipients, subject, body_text, body_html, message_id)`,
              [
                id,
                mails.map((m) => m.seq),
                mails.map((m) => m.audience),
                mails.map((m) => JSON.stringify(m.to)),
                mails.map((m) => m.subject),
                mails.map((m) => m.text),
                mails.map((m) => m.html),
                mails.map((m) => m.messageId),
              ],
            );
            await client.query('COMMIT');
            return { digest, claimed: { id, records: digest.total, claimedBy, mails } };
          }
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw err;
        } finally {
          client.release();
        }
        digest = digest.without(covered ?? new Map());
      }
    },

    /**
     * Send the digest's unsent mails, each marked as SMTP accepts it, then the digest. Retries SMTP
     * and the database with backoff until done; false when the claim went to another process (its
     * lease ran out meanwhile) or `signal` aborted.
     */
    async send(claimed: ClaimedDigest, opts: SendOptions): Promise<boolean> {
      let delay = opts.initialBackoffMs;
      let failures = 0;
      const backoff = async (): Promise<void> => {
        await sleep(delay, opts.signal);
        delay = Math.min(delay * 2, opts.maxBackoffMs);
      };
      for (const mail of claimed.mails) {
        while (!mail.sent) {
          if (opts.signal.aborted) return false;
          try {
            if (!(await renew(claimed, opts.leaseMs))) {
              opts.logger.warn({ digest: claimed.id }, 'digest claim lost (lease ran out): the process that took it over sends it');
              return false;
            }
          } catch (err) {
            opts.logger.warn({ err, digest: claimed.id, retryInMs: delay }, 'could not renew the digest claim; retrying');
            await backoff();
            continue;
          }
          try {
            await opts.mailer.send(mail);
          } catch (err) {
            failures++;
            opts.onSmtpFailure?.();
            opts.logger[failures === 1 || failures % 10 === 0 ? 'warn' : 'debug'](
              { err: { message: (err as Error).message, code: (err as { code?: string }).code }, failures, retryInMs: delay, records: claimed.records, digest: claimed.id },
              'SMTP did not accept the digest; retrying (kept, offsets uncommitted)',
            );
            await backoff();
            continue;
          }
          opts.afterSmtp?.();
          mail.sent = true;
          opts.onMailSent?.(mail);
          await retrying(opts, 'marking a digest mail sent', () => pool.query('UPDATE alert_digest_mails SET sent_at = now() WHERE digest_id = $1 AND seq = $2', [claimed.id, mail.seq]));
        }
      }
      await retrying(opts, 'marking a digest sent', () => pool.query('UPDATE alert_digests SET sent_at = now() WHERE id = $1 AND sent_at IS NULL', [claimed.id]));
      return !opts.signal.aborted;
    },

    /** Take over the oldest unsent digest of the group whose claimer's lease ran out (it died). */
    async takeOverExpired(group: string, leaseMs: number): Promise<ClaimedDigest | undefined> {
      const claimedBy = randomUUID();
      const { rows } = await pool.query<{ id: string; records: number }>(
        `UPDATE alert_digests SET claimed_by = $2, claimed_until = now() + $3 * interval '1 millisecond'
          WHERE id = (SELECT id FROM alert_digests WHERE consumer_group = $1 AND sent_at IS NULL AND claimed_until < now()
                      ORDER BY claimed_at LIMIT 1 FOR UPDATE SKIP LOCKED)
          RETURNING id, records`,
        [group, claimedBy, leaseMs],
      );
      const row = rows[0];
      if (!row) return undefined;
      return { id: row.id, records: row.records, claimedBy, mails: await mailsOf(row.id) };
    },

    /** Digests newest first, for the console. */
    async recent(limit: number): Promise<SentDigestRow[]> {
      const { rows } = await pool.query<{
        id: string;
        consumer_group: string;
        records: number;
        claimed_at: Date;
        sent_at: Date | null;
        mails: number;
        ranges: Array<{ topic: string; partition: number; first_offset: string; last_offset: string }> | null;
      }>(
        `SELECT d.id, d.consumer_group, d.records, d.claimed_at, d.sent_at,
                (SELECT count(*)::int FROM alert_digest_mails m WHERE m.digest_id = d.id) AS mails,
                (SELECT json_agg(json_build_object('topic', r.topic, 'partition', r.partition, 'first_offset', r.first_offset::text, 'last_offset', r.last_offset::text) ORDER BY r.topic, r.partition)
                   FROM alert_digest_ranges r WHERE r.digest_id = d.id) AS ranges
           FROM alert_digests d ORDER BY d.claimed_at DESC LIMIT $1`,
        [limit],
      );
      return rows.map((r) => ({
        id: r.id,
        consumerGroup: r.consumer_group,
        records: r.records,
        claimedAt: r.claimed_at,
        sentAt: r.sent_at,
        mails: r.mails,
        ranges: (r.ranges ?? []).map((x) => ({ topic: x.topic, partition: x.partition, firstOffset: x.first_offset, lastOffset: x.last_offset })),
      }));
    },

    /** Forget sent digests older than the DLQ's retention (their records are gone from the topic). */
    async prune(olderThanMs: number): Promise<number> {
      const { rowCount } = await pool.query(`DELETE FROM alert_digests WHERE sent_at IS NOT NULL AND sent_at < now() - $1 * interval '1 millisecond'`, [olderThanMs]);
      return rowCount ?? 0;
    },
  };
}

export type DigestLog = ReturnType<typeof createDigestLog>;

/** A database write that must happen: retried with backoff until it does or `signal` aborts. */
async function retrying(opts: Pick<SendOptions, 'signal' | 'logger' | 'initialBackoffMs' | 'maxBackoffMs'>, what: string, fn: () => Promise<unknown>): Promise<void> {
  let delay = opts.initialBackoffMs;
  for (;;) {
    try {
      await fn();
      return;
    } catch (err) {
      if (opts.signal.aborted) return;
      opts.logger.warn({ err, retryInMs: delay }, `${what} failed; retrying`);
      await sleep(delay, opts.signal);
      delay = Math.min(delay * 2, opts.maxBackoffMs);
    }
  }
}
