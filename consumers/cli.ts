/**
 * `ats-relay consume --role <role>`: one consumer process. Scale a role by running more of it
 * (up to the partition count of its topic); each role has its own consumer group.
 */
import type { Registry } from 'prom-client';
import { runMain, UsageError } from '../lib/cli.ts';
import { createLogger } from '../lib/logger.ts';
import { groupIdFor, tierByName, type DeliveryRole } from './dispatcher/options.ts';
import { startHealthServer } from './health-server.ts';
import type { RunningConsumer } from './runtime/runtime.ts';

const usage = `Usage: ats-relay consume --role <role> [--tier <name>]
       npm run consume -- --role <role> [--tier <name>]

Roles:
  dispatcher          reads ats.applications, delivers to each customer's ATS   (group ats-relay.dispatcher)
  retry --tier <t>    reads one retry tier (retry-30s, retry-2m, retry-5m by default) and delivers
                      each record once it is due                                (group ats-relay.<tier>)
  dlq-s3              archives the DLQ to S3 as gzipped JSON lines, committing only what is
                      stored                                                    (group ats-relay.dlq-s3)
  alerts              e-mails one digest of dead letters per ALERT_WINDOW_MS, grouped by company,
                      platform and error code                                   (group ats-relay.alerts)

Options:
  --role <role>       which consumer to run (required)
  --tier <name>       the retry tier, with --role retry (see RETRY_TIERS)
  --group <id>        override the consumer group (tests, blue/green)
  -h, --help          this help

Each process serves /healthz, /readyz and /metrics on HTTP_PORT. SIGTERM/SIGINT stop fetching,
finish (or hand to the next tier) what is in flight, commit and leave the group within
SHUTDOWN_TIMEOUT_MS; dlq-s3 writes what it buffered first, alerts finishes a digest being sent
(records not yet in a sent digest stay uncommitted and are counted by the next run).
Configuration comes from the environment: see the README.`;


await runMain({
  name: 'consume',
  usage,
  options: { role: { type: 'string' }, tier: { type: 'string' }, group: { type: 'string' } },
  async run({ config, values, onShutdown, shutdownRequested }) {
    const group = values.group ? { groupId: values.group } : {};
    let role: DeliveryRole | undefined;
    if (values.role === 'dlq-s3' || values.role === 'alerts') role = undefined;
    else if (values.role === 'dispatcher') role = { role: 'dispatcher' };
    else if (values.role === 'retry') {
      if (!values.tier) throw new UsageError(`--role retry needs --tier (one of ${config.topics.retryTiers.map((t) => t.name).join(', ')})`);
      try {
        role = { role: 'retry', tier: tierByName(config, values.tier).name };
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
    } else throw new UsageError(values.role ? `unknown role "${values.role}"\n\n${usage}` : `--role is required\n\n${usage}`);

    const logger = createLogger({ level: config.log.level, name: `ats-relay:${values.role}${values.tier ? `:${values.tier}` : ''}` });
    // Only the chosen role's module is loaded: a dispatcher carries no S3 client or mailer, whose
    // code and data every full GC would otherwise mark again (issue 17).
    const consumer: RunningConsumer<{ registry: Registry }> =
      role !== undefined
        ? (await import('./dispatcher/index.ts')).createDeliveryConsumer({ config, logger, role, options: { groupId: values.group ?? groupIdFor(role) } })
        : values.role === 'dlq-s3'
          ? (await import('./dlq-s3-sink/index.ts')).createDlqS3Sink({ config, logger, options: group })
          : (await import('./alerts/index.ts')).createAlertConsumer({ config, logger, options: group });
    const health = await startHealthServer({ port: config.http.port, registry: consumer.metrics.registry, ready: () => consumer.ready });
    onShutdown(() => health.close());
    onShutdown(() => consumer.close());
    logger.info({ port: health.port }, 'health and metrics listening');
    await consumer.start();
    // A client that gave up ends the process non-zero (runMain closes what it can first).
    await Promise.race([shutdownRequested, consumer.failed]);
  },
});
