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
 *
 * This file wires it, run by `consume --role alerts`: the consumer runtime (consumers/runtime/) owns
 * the group membership, pauses, lag gauge and ordered close; handler.ts makes the decisions above;
 * options.ts holds the settings and their defaults.
 */
import type { Config } from '../../lib/config.ts';
import { createKafka, type KafkaClient } from '../../lib/kafka/index.ts';
import type { Logger } from '../../lib/logger.ts';
import { createMailer, type Mailer } from '../../lib/mailer.ts';
import { createEventCodec, type EventCodec } from '../../lib/serde.ts';
import { createDeadLetterMetrics, type DeadLetterMetrics } from '../dead-letter-metrics.ts';
import { ConsumerRuntime } from '../runtime/runtime.ts';
import { createAlertHandler } from './handler.ts';
import { alertOptions, type AlertOptions } from './options.ts';

export { DEFAULT_GROUP_ID } from './options.ts';

export interface AlertConsumerDeps {
  config: Config;
  logger: Logger;
  options?: Partial<AlertOptions>;
  metrics?: DeadLetterMetrics;
  /** Default: built from config.alerts (lib/mailer.ts). */
  mailer?: Mailer;
  kafka?: KafkaClient;
  codec?: EventCodec;
  now?: () => number;
}

export interface AlertConsumer {
  readonly groupId: string;
  readonly metrics: DeadLetterMetrics;
  readonly ready: boolean;
  /** Rejects once the Kafka client gave up for good: close and exit non-zero (a supervisor restarts the process). */
  readonly failed: Promise<never>;
  /** Records counted and not yet in a sent digest (tests, diagnostics). */
  readonly pending: number;
  start(): Promise<void>;
  close(): Promise<void>;
}

export function createAlertConsumer(deps: AlertConsumerDeps): AlertConsumer {
  const { config } = deps;
  const opts = alertOptions(config, deps.options);
  const now = deps.now ?? Date.now;
  const logger = deps.logger.child({ component: 'alerts', group: opts.groupId, topic: opts.topic });
  const metrics = deps.metrics ?? createDeadLetterMetrics('alerts');
  const mailer = deps.mailer ?? createMailer(config.alerts);
  const ownsMailer = deps.mailer === undefined;
  const kafka = deps.kafka ?? createKafka(config.kafka, logger, { clientIdSuffix: opts.groupId });
  const codec = deps.codec ?? createEventCodec({ registryUrl: config.schemaRegistry.url, topic: config.topics.applications });
  const runtime = new ConsumerRuntime({
    kafka,
    groupId: opts.groupId,
    topics: [opts.topic],
    logger,
    sessionTimeoutMs: opts.sessionTimeoutMs,
    maxWaitTimeMs: 500,
    drainTimeoutMs: opts.drainTimeoutMs,
    onLag: (topic, partition, lag) => metrics.lag.set({ topic, partition: String(partition) }, lag),
  });
  const handler = createAlertHandler({ opts, mailer, codec, metrics, logger, runtime, now });
  let closing: Promise<void> | undefined;

  return {
    groupId: opts.groupId,
    metrics,
    failed: runtime.failed,
    get ready() {
      return runtime.ready;
    },
    get pending() {
      return handler.pending;
    },

    async start() {
      await runtime.start(handler);
      handler.startWindows();
      logger.info({ windowMs: opts.windowMs, maxDigests: opts.maxDigests, rateWindowMs: opts.rateWindowMs, to: opts.to }, 'alerting on the DLQ');
    },

    close() {
      closing ??= (async () => {
        await runtime.close();
        handler.stop();
        if (ownsMailer) mailer.close();
        logger.info({ notSent: handler.pending }, 'stopped');
      })();
      return closing;
    },
  };
}
