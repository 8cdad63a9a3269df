/**
 * `npm run outbox-relay`: publishes the outbox rows of TOPIC_APPLICATIONS until SIGTERM, then
 * finishes the batch in flight, flushes and disconnects. Run as many as you like (SKIP LOCKED).
 */
import { Registry } from 'prom-client';
import { startHealthServer } from '../../consumers/health-server.ts';
import { runMain, wholeNumberFlag } from '../../lib/cli.ts';
import { createPool } from '../../lib/db.ts';
import { createKafka, createProducer, kafkaError } from '../../lib/kafka/index.ts';
import { createLogger } from '../../lib/logger.ts';
import { createTopicCodecs } from './codecs.ts';
import { DEFAULT_RELAY_TUNING } from './options.ts';
import { createOutboxRelay } from './relay.ts';

const d = DEFAULT_RELAY_TUNING;

await runMain({
  name: 'outbox-relay',
  usage: `Usage: npm run outbox-relay -- [options]

Publishes pending outbox rows of TOPIC_APPLICATIONS in order (Avro via the Schema Registry, idempotent
producer, acks=all) and marks them sent. Woken by NOTIFY, polls as a fallback. Several relays may run.

Options:
  --batch-size N        rows per batch / transaction (default ${d.batchSize})
  --poll-interval-ms N  polling fallback (default ${d.pollIntervalMs})
  --retention-ms N      delete sent rows older than this (default ${d.retentionMs}, 7 days)
  --prune-interval-ms N how often to prune (default ${d.pruneIntervalMs})
  --pipeline-depth N    batches claimed ahead of the broker's acks (default ${d.pipelineDepth})
  --all-topics          relay rows of every topic, not only TOPIC_APPLICATIONS
  --topics a,b          relay rows of these topics, e.g. the way back's TOPIC_APPLICATION_STATUS,TOPIC_JOBS

Serves /healthz and /readyz (started, batches not failing, not stopping) on HTTP_PORT, like the consumers, for
Kubernetes' probes.`,
  options: {
    'batch-size': { type: 'string' },
    'poll-interval-ms': { type: 'string' },
    'retention-ms': { type: 'string' },
    'prune-interval-ms': { type: 'string' },
    'pipeline-depth': { type: 'string' },
    'all-topics': { type: 'boolean' },
    topics: { type: 'string' },
  },
  async run({ config, values, onShutdown, shutdownRequested }) {
    const logger = createLogger({ level: config.log.level, name: 'outbox-relay' });
    const pipelineDepth = wholeNumberFlag('pipeline-depth', values['pipeline-depth']) ?? d.pipelineDepth;
    // One connection per batch claimed ahead, one for a batch being marked, one for pruning and bookkeeping.
    const pool = createPool(config.database, { max: pipelineDepth + 2, applicationName: 'ats-relay-outbox' });
    onShutdown(() => pool.end());
    const kafka = createKafka(config.kafka, logger, { clientIdSuffix: 'outbox-relay' });
    const producer = createProducer(kafka);
    try {
      await producer.connect();
    } catch (err) {
      throw kafkaError(err, 'cannot connect to Kafka');
    }
    onShutdown(() => producer.disconnect());

    // Each topic's own contract: the way back's topics carry ApplicationStatusChanged / JobSynced.
    const codecFor = createTopicCodecs(config);
    // Fail fast on a registry that is not there or rejects the schema, before taking rows.
    await codecFor(config.topics.applications).register();

    const relay = createOutboxRelay({
      pool,
      databaseUrl: config.database.url,
      producer,
      codecFor,
      logger,
      ...(values['all-topics'] ? {} : { topics: values.topics ? values.topics.split(',').map((t) => t.trim()).filter(Boolean) : [config.topics.applications] }),
      batchSize: wholeNumberFlag('batch-size', values['batch-size']) ?? d.batchSize,
      pollIntervalMs: wholeNumberFlag('poll-interval-ms', values['poll-interval-ms']) ?? d.pollIntervalMs,
      retentionMs: wholeNumberFlag('retention-ms', values['retention-ms']) ?? d.retentionMs,
      pruneIntervalMs: wholeNumberFlag('prune-interval-ms', values['prune-interval-ms']) ?? d.pruneIntervalMs,
      pipelineDepth,
    });
    // Registered last, so it runs first: stop claiming and finish the batch before the producer goes.
    onShutdown(() => relay.close());
    // Probes (deploy/k8s): ready once relaying; not ready while its batches fail (Kafka or PostgreSQL
    // unreachable: it keeps retrying, rows wait) and as soon as a shutdown starts.
    let ready = false;
    const health = await startHealthServer({ port: config.http.port, registry: new Registry(), ready: () => ready && !relay.stats().failing });
    onShutdown(() => health.close());
    await relay.start();
    ready = true;
    logger.info({ port: health.port }, 'health listening');
    logger.info({ topics: values['all-topics'] ? 'all' : (values.topics ?? config.topics.applications) }, 'outbox relay started');
    const signal = await shutdownRequested;
    ready = false;
    logger.info({ signal, ...relay.stats() }, 'outbox relay stopping');
    return 0; // runMain runs the cleanups (relay → producer → pool) once, then exits
  },
});
