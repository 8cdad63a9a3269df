/**
 * `ats-relay consume --role <role>`: one consumer process. Scale a role by running more of it
 * (up to the partition count of its topic); each role has its own consumer group.
 */
import { runMain, UsageError } from '../lib/cli.ts';
import { createLogger } from '../lib/logger.ts';
import { createDeliveryConsumer, groupIdFor, tierByName, type DeliveryRole } from './dispatcher/index.ts';
import { startHealthServer } from './health-server.ts';

const usage = `Usage: ats-relay consume --role <role> [--tier <name>]
       npm run consume -- --role <role> [--tier <name>]

Roles:
  dispatcher          reads ats.applications, delivers to each customer's ATS   (group ats-relay.dispatcher)
  retry --tier <t>    reads one retry tier (retry-30s, retry-2m, retry-5m by default) and delivers
                      each record once it is due                                (group ats-relay.<tier>)

Options:
  --role <role>       which consumer to run (required)
  --tier <name>       the retry tier, with --role retry (see RETRY_TIERS)
  --group <id>        override the consumer group (tests, blue/green)
  -h, --help          this help

Each process serves /healthz, /readyz and /metrics on HTTP_PORT. SIGTERM/SIGINT stop fetching,
finish (or hand to the next tier) what is in flight, commit and leave the group within
SHUTDOWN_TIMEOUT_MS. Configuration comes from the environment: see the README.`;

await runMain({
  name: 'consume',
  usage,
  options: { role: { type: 'string' }, tier: { type: 'string' }, group: { type: 'string' } },
  async run({ config, values, onShutdown, shutdownRequested }) {
    let role: DeliveryRole;
    if (values.role === 'dispatcher') role = { role: 'dispatcher' };
    else if (values.role === 'retry') {
      if (!values.tier) throw new UsageError(`--role retry needs --tier (one of ${config.topics.retryTiers.map((t) => t.name).join(', ')})`);
      try {
        role = { role: 'retry', tier: tierByName(config, values.tier).name };
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
    } else throw new UsageError(values.role ? `unknown role "${values.role}"\n\n${usage}` : `--role is required\n\n${usage}`);

    const logger = createLogger({ level: config.log.level, name: `ats-relay:${values.role}${values.tier ? `:${values.tier}` : ''}` });
    const consumer = createDeliveryConsumer({ config, logger, role, ...(values.group ? { groupId: values.group } : { groupId: groupIdFor(role) }) });
    const health = await startHealthServer({ port: config.http.port, registry: consumer.metrics.registry, ready: () => consumer.ready });
    onShutdown(() => health.close());
    onShutdown(() => consumer.close());
    logger.info({ port: health.port }, 'health and metrics listening');
    await consumer.start();
    await shutdownRequested;
  },
});
