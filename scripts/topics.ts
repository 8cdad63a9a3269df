/**
 * `npm run topics -- ensure | describe`: create ats-relay's topics from the configuration, or show
 * them. `ensure` never deletes or shrinks anything; drift is reported and exits 1.
 */
import { runMain, UsageError } from '../lib/cli.ts';
import { createKafka, withAdmin } from '../lib/kafka/index.ts';
import { createLogger } from '../lib/logger.ts';
import { renderTable } from './text-table.ts';
import { describeTopics, ensureTopics, topicSpecs, inboundTopicSpecs, type TopicSpec } from '../lib/topics.ts';

const days = (ms: string | undefined): string => (ms === undefined ? '-' : ms === '-1' ? 'forever' : `${+(Number(ms) / 86_400_000).toFixed(2)} d`);

await runMain({
  name: 'topics',
  usage: `Usage: npm run topics -- <ensure|describe>

  ensure    Create the missing topics (main, retry tiers, DLQ) with the configured partitions,
            replication factor and retention. Idempotent. Existing topics are compared with the
            configuration: drift (e.g. fewer partitions) is reported, never fixed by deleting data;
            exit code 1 when there is drift.
  describe  Print the topics as the cluster has them next to the configuration.

Configuration: KAFKA_BROKERS, TOPIC_APPLICATIONS, TOPIC_PARTITIONS, TOPIC_REPLICATION_FACTOR,
TOPIC_RETENTION_MS, DLQ_RETENTION_MS, RETRY_TIERS, TOPIC_APPLICATION_STATUS, TOPIC_JOBS.`,
  options: {},
  async run({ config, positionals }) {
    const command = positionals[0];
    if (command !== 'ensure' && command !== 'describe') throw new UsageError(`expected "ensure" or "describe", got ${command ? `"${command}"` : 'nothing'}`);
    const logger = createLogger({ level: config.log.level, name: 'topics' });
    const kafka = createKafka(config.kafka, logger, { clientIdSuffix: 'topics' });
    const specs = [...topicSpecs(config.topics), ...inboundTopicSpecs(config)];
    const configured = (s: TopicSpec): string => `${s.partitions} × rf ${s.replicationFactor}, ${days(s.configs['retention.ms'])}`;

    if (command === 'describe') {
      const actual = await withAdmin(kafka, (admin) => describeTopics(admin, specs));
      console.log(
        renderTable(
          specs.map((s, i) => ({ spec: s, actual: actual[i]! })),
          [
            { header: 'TOPIC', value: (r) => r.spec.topic },
            { header: 'ROLE', value: (r) => r.spec.role },
            { header: 'PARTITIONS', value: (r) => (r.actual.exists ? r.actual.partitions : 'missing') },
            { header: 'RF', value: (r) => (r.actual.exists ? r.actual.replicationFactor : '-') },
            { header: 'RETENTION', value: (r) => (r.actual.exists ? days(r.actual.configs['retention.ms']) : '-') },
            { header: 'CLEANUP', value: (r) => r.actual.configs['cleanup.policy'] },
            { header: 'MIN ISR', value: (r) => r.actual.configs['min.insync.replicas'] },
            { header: 'CONFIGURED', value: (r) => configured(r.spec) },
          ],
        ),
      );
      return actual.every((a) => a.exists) ? 0 : 1;
    }

    const reports = await withAdmin(kafka, (admin) => ensureTopics(admin, specs));
    console.log(
      renderTable(reports, [
        { header: 'TOPIC', value: (r) => r.topic },
        { header: 'ROLE', value: (r) => r.role },
        { header: 'STATUS', value: (r) => r.status },
        { header: 'PARTITIONS', value: (r) => r.partitions },
        { header: 'RF', value: (r) => r.replicationFactor },
        { header: 'RETENTION', value: (r) => days(r.configs['retention.ms']) },
        { header: 'DRIFT', value: (r) => r.drift.join('; ') || '-' },
      ]),
    );
    const drifted = reports.filter((r) => r.status === 'drift');
    if (drifted.length) {
      console.error(
        `\n${drifted.length} topic(s) differ from the configuration. Nothing was changed. Fix by hand if intended: ` +
          'kafka-topics.sh --alter --partitions N (moves keys to other partitions; drain consumers first) or ' +
          'kafka-configs.sh --alter --add-config retention.ms=…',
      );
      return 1;
    }
    return 0;
  },
});
