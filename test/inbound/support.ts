/**
 * Shared set-up for the way-back tests: status and jobs topics of the test's own, the API listening
 * on a free port (the sandbox posts real HTTP webhooks at it), the ATS sandbox, an outbox relay for
 * the two topics (started when a test says so), and an independent reader that decodes the topics
 * with plain avsc and the schema fetched by id over HTTP.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { expect } from 'vitest';
import { buildApi } from '../../api/server.ts';
import { createConnectors, type Connectors } from '../../connectors/index.ts';
import type { Config } from '../../lib/config.ts';
import type { Platform } from '../../registry/integration.ts';
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
import { createOutboxRelay, type OutboxRelay, type RelayStats } from '../../producers/outbox/relay.ts';
import { startSandbox, type Sandbox } from '../../sandbox/server.ts';
import type { WebhookSpec } from '../../sandbox/webhooks.ts';
import { sampleIntegration } from '../registry/support.ts';
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
  /** The running relay's stats (undefined while it is stopped). */
  relayStats(): RelayStats | undefined;
  close(): Promise<void>;
}

/** `logDestination`: where the API's and the relay's log lines go (tests that assert what is never logged). */
export async function inboundHarness(overrides: Record<string, string> = {}, opts: { logDestination?: NodeJS.WritableStream } = {}): Promise<InboundHarness> {
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
  const logger = createLogger({ level: opts.logDestination ? 'debug' : config.log.level, ...(opts.logDestination ? { destination: opts.logDestination } : {}) });
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
    relayStats: () => relay?.stats(),
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

export interface Receiver {
  integration: IntegrationRecord;
  secret: string;
  url: string;
}

export interface DeliveredIds {
  applicationId: string;
  externalApplicationId: string;
  externalCandidateId: string;
}

export interface WebhookReceivers {
  /** An integration with a webhook secret set through the API (Workable: its API token). */
  receiver(platform: Platform): Promise<Receiver>;
  /** A delivered application in the delivery log, with the ATS ids the connector stored. */
  delivered(r: Receiver): Promise<DeliveredIds>;
  /** The sandbox's stage change to "interview" for those ids, signed with the receiver's secret. */
  spec(r: Receiver, ids: { externalApplicationId: string; externalCandidateId: string }, extra?: Partial<WebhookSpec>): WebhookSpec;
}

export function webhookReceivers(h: InboundHarness): WebhookReceivers {
  return {
    async receiver(platform) {
      const integration = await h.createIntegration(sampleIntegration(platform));
      let secret = integration.credentials.token ?? '';
      if (platform !== 'workable') {
        const res = await h.app.inject({ method: 'POST', url: `/integrations/${integration.id}/webhook-secret`, headers: { authorization: `Bearer ${h.adminToken}` } });
        expect(res.statusCode, res.body).toBe(200);
        secret = (JSON.parse(res.body) as { secret: string }).secret;
      }
      const info = await h.app.inject({ method: 'GET', url: `/integrations/${integration.id}/webhook`, headers: { authorization: `Bearer ${h.adminToken}` } });
      expect(JSON.parse(info.body)).toMatchObject({ url: `${h.config.inbound.publicBaseUrl}/integrations/${integration.id}/webhook`, secretSet: true });
      return { integration, secret, url: `${h.apiUrl}/integrations/${integration.id}/webhook` };
    },
    async delivered(r) {
      const applicationId = `app-${randomUUID()}`;
      const numeric = String(Math.floor(Math.random() * 1e9));
      const externalApplicationId = r.integration.platform === 'greenhouse' ? numeric : `ext-${randomUUID()}`;
      const externalCandidateId = r.integration.platform === 'greenhouse' ? String(Number(numeric) + 1) : r.integration.platform === 'workable' ? externalApplicationId : `cand-${randomUUID()}`;
      await h.deliveries.recordDeliveryOutcome({ integrationId: r.integration.id, applicationId, eventId: randomUUID(), status: 'delivered', externalApplicationId, externalCandidateId });
      return { applicationId, externalApplicationId, externalCandidateId };
    },
    spec(r, ids, extra = {}) {
      return { platform: r.integration.platform, url: r.url, secret: r.secret, kind: 'stage_change', stage: r.integration.platform === 'lever' ? 'interview-onsite' : 'Face to Face', ...ids, ...extra };
    },
  };
}
