/**
 * Shared set-up for the way-back tests: status and jobs topics of the test's own, the API listening
 * on a free port (the sandbox posts real HTTP webhooks at it), the ATS sandbox, an outbox relay for
 * the two topics (started when a test says so), and an independent reader that decodes the topics
 * with plain avsc and the schema fetched by id over HTTP.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../api/server.ts';
import { createConnectors, type Connectors } from '../../connectors/index.ts';
import type { Config } from '../../lib/config.ts';
import { Keyring } from '../../registry/keyring.ts';
import { createPool, type Pool } from '../../lib/db.ts';
import { createKafka, createProducer, withAdmin, type KafkaClient, type Producer } from '../../lib/kafka/index.ts';
import { createLogger, type Logger } from '../../lib/logger.ts';
import { createDeliveryStore, type DeliveryStore } from '../../consumers/dispatcher/delivery-store.ts';
import { createIntegrationRepository, type IntegrationRepository } from '../../registry/repository.ts';
import type { IntegrationRecord } from '../../registry/integrations.ts';
import type { NewIntegrationInput } from '../../registry/validation.ts';
import { ensureTopics, inboundTopicSpecs } from '../../lib/topics.ts';
import { createTopicCodecs } from '../../producers/outbox/codecs.ts';
import { createOutboxRelay, type OutboxRelay } from '../../producers/outbox/relay.ts';
import { startSandbox, type Sandbox } from '../../sandbox/server.ts';
import { independentDecode } from '../events/support.ts';
import { readTopic } from '../support/topic-reader.ts';
import { testConfig, uniqueName } from '../support/config.ts';

export interface InboundHarness {
  config: Config;
  pool: Pool;
  repo: IntegrationRepository;
  /** The delivery log (the dispatcher's; tests read and seed it). */
  deliveries: DeliveryStore;
  kafka: KafkaClient;
  logger: Logger;
  sandbox: Sandbox;
  connectors: Connectors;
  app: FastifyInstance;
  apiUrl: string;
  adminToken: string;
  company: string;
  createIntegration(input: NewIntegrationInput): Promise<IntegrationRecord>;
  startRelay(): Promise<void>;
  stopRelay(): Promise<void>;
  /** Every record of a topic, decoded independently: key and value. */
  read(topic: string): Promise<Array<{ key: string; value: Record<string, unknown> }>>;
  outboxPending(): Promise<number>;
  close(): Promise<void>;
}

export async function inboundHarness(overrides: Record<string, string> = {}): Promise<InboundHarness> {
  const config = testConfig({
    TOPIC_APPLICATION_STATUS: uniqueName('status'),
    TOPIC_JOBS: uniqueName('jobs'),
    TOPIC_PARTITIONS: '2',
    ATS_ALLOW_PRIVATE_NETWORKS: 'true',
    ...overrides,
  });
  const pool = createPool(config.database, { max: 12 });
  const keyring = new Keyring(config.crypto.encryptionKeys);
  const repo = createIntegrationRepository({ pool, keyring });
  const logger = createLogger({ level: config.log.level });
  const kafka = createKafka(config.kafka, logger, { clientIdSuffix: 'inbound-test' });
  await withAdmin(kafka, (admin) => ensureTopics(admin, inboundTopicSpecs(config)));
  const sandbox = await startSandbox();
  const connectors = createConnectors({ requestTimeoutMs: 10_000, allowPrivateNetworks: true, resumeMaxBytes: 1_000_000 });
  const app = buildApi({ config, pool, keyring, log: logger, repository: repo, connectors, jobLister: connectors });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const apiUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const company = uniqueName('inbound');
  const adminToken = (await repo.createApiToken({ name: `${company} admin`, scope: { kind: 'admin' } })).token;
  const topics = [config.inbound.statusTopic, config.inbound.jobsTopic];

  let producer: Producer | undefined;
  let relay: OutboxRelay | undefined;
  const stopRelay = async (): Promise<void> => {
    await relay?.close();
    await producer?.disconnect();
    relay = undefined;
    producer = undefined;
  };

  return {
    config,
    pool,
    repo,
    deliveries: createDeliveryStore(pool),
    kafka,
    logger,
    sandbox,
    connectors,
    app,
    apiUrl,
    adminToken,
    company,
    createIntegration: (input) => repo.createIntegration(company, input),
    async startRelay() {
      producer = createProducer(kafka);
      await producer.connect();
      relay = createOutboxRelay({ pool, databaseUrl: config.database.url, producer, codecFor: createTopicCodecs(config), topics, logger, pollIntervalMs: 200 });
      await relay.start();
    },
    stopRelay,
    async read(topic) {
      const records = await readTopic(kafka, topic);
      return Promise.all(
        records.map(async (r) => ({ key: r.key?.toString('utf8') ?? '', value: (await independentDecode(config.schemaRegistry.url, r.value!)).value as Record<string, unknown> })),
      );
    },
    async outboxPending() {
      const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM outbox WHERE topic = ANY($1::text[]) AND sent_at IS NULL', [topics]);
      return Number(rows[0]!.n);
    },
    async close() {
      await stopRelay().catch(() => undefined);
      await app.close().catch(() => undefined);
      await connectors.close().catch(() => undefined);
      await sandbox.close().catch(() => undefined);
      await withAdmin(kafka, (admin) => admin.deleteTopics(topics)).catch(() => undefined);
      await pool.query('DELETE FROM outbox WHERE topic = ANY($1::text[])', [topics]).catch(() => undefined);
      await pool.query('DELETE FROM integrations WHERE company_id = $1', [company]).catch(() => undefined);
      await pool.query('DELETE FROM api_tokens WHERE name = $1', [`${company} admin`]).catch(() => undefined);
      await pool.end();
    },
  };
}
