/**
 * The alert consumer (group `ats-relay.alerts`): counts dead letters by company, platform and error
 * code and e-mails one digest per window (aligned to wall-clock multiples of `windowMs`) to the ops
 * recipients, plus each affected company's own recipients (their groups only).
 *
 * - Offsets are committed only for records counted in a digest that SMTP accepted. A record read but
 *   not yet in a sent digest stays uncommitted: a restart re-reads and counts it then.
 * - SMTP down: the sealed digest is kept and retried with backoff; new records aggregate into the
 *   next digest meanwhile. Nothing is dropped.
 * - Rate cap: at most `maxDigests` digests per `rateWindowMs`. A window end under the cap does not
 *   send; the digest keeps aggregating and goes out at the first window end the cap allows, with
 *   every record counted exactly once.
 * - Re-reads (rebalance, restart) are not double-counted within a digest: per partition, offsets
 *   below the next expected one are skipped, and a digest counts each offset once (digest.ts).
 * - Rebalance: a revoked partition's records leave the digest being built (its new owner counts them).
 * - close(): stop fetching, let a digest being sent finish (bounded), commit, leave; the digest still
 *   aggregating is not sent (its records are uncommitted and counted by the next run).
 * - A crash between SMTP and the commit never reports a dead letter twice (digest-log.ts), and
 *   integrations throttled for long are alerted once per episode (throttle-watch.ts).
 *
 * This file wires it, run by `consume --role alerts`: the consumer runtime (consumers/runtime/) owns
 * the group membership, pauses, lag gauge and ordered close; handler.ts makes the decisions above;
 * options.ts holds the settings and their defaults.
 */
import { createPool, type Pool } from '../../lib/db.ts';
import { createMailer, type Mailer } from './mailer.ts';
import { createDeadLetterConsumer, type DeadLetterConsumer, type DeadLetterConsumerDeps } from '../dead-letter-consumer.ts';
import { createDigestLog } from './digest-log.ts';
import { createAlertHandler } from './handler.ts';
import { alertOptions, type AlertOptions } from './options.ts';
import { createThrottleWatch } from './throttle-watch.ts';

export { DEFAULT_GROUP_ID } from './options.ts';

export interface AlertConsumerDeps extends DeadLetterConsumerDeps<AlertOptions> {
  /** Default: built from config.alerts (./mailer.ts). */
  mailer?: Mailer;
  /** Default: a small pool from config.database (the digest log and throttling episodes). */
  pool?: Pool;
}

export interface AlertConsumer extends DeadLetterConsumer {
  /** Records counted and not yet in a sent digest (tests, diagnostics). */
  readonly pending: number;
}

export function createAlertConsumer(deps: AlertConsumerDeps): AlertConsumer {
  const opts = alertOptions(deps.config, deps.options);
  const mailer = deps.mailer ?? createMailer(deps.config.alerts);
  const pool = deps.pool ?? createPool(deps.config.database, { max: 3, applicationName: `ats-relay ${opts.groupId}` });
  const digestLog = createDigestLog(pool);
  const consumer = createDeadLetterConsumer(deps, {
    component: 'alerts',
    role: 'alerts',
    opts,
    handler: (context) =>
      createAlertHandler({
        ...context,
        opts,
        mailer,
        digestLog,
        throttleWatch: createThrottleWatch({
          pool, mailer, logger: context.logger, afterMs: opts.throttledAfterMs, intervalMs: opts.throttleCheckIntervalMs, leaseMs: opts.claimLeaseMs,
          staleAfterMs: opts.throttleStaleAfterMs, to: opts.to, companyRecipients: opts.companyRecipients,
        }),
      }),
    started(handler, logger) {
      handler.startWindows();
      logger.info({ windowMs: opts.windowMs, maxDigests: opts.maxDigests, rateWindowMs: opts.rateWindowMs, to: opts.to }, 'alerting on the DLQ');
    },
    async stopped(handler, logger) {
      await handler.stop();
      if (deps.mailer === undefined) mailer.close();
      if (deps.pool === undefined) await pool.end();
      logger.info({ notSent: handler.pending }, 'stopped');
    },
  });
  // A live getter (Object.assign would copy today's value).
  return Object.defineProperty(consumer, 'pending', { get: () => consumer.work.pending, enumerable: true }) as unknown as AlertConsumer;
}
