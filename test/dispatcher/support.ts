/**
 * A delivery pipeline of the test's own: unique topics with short tier delays, a Greenhouse
 * integration pointing at an in-process ATS sandbox, and helpers to publish events and read
 * records back from a topic.
 */
import { startPipelineBase } from '../support/pipeline-base.ts';
import { sampleEvent } from '../support/events.ts';
import { randomUUID } from 'node:crypto';
import type { ApplicationSubmitted } from '../../lib/application.ts';
import type { Config } from '../../lib/config.ts';
import { Keyring } from '../../registry/keyring.ts';
import { createPool, type Pool } from '../../lib/db.ts';
import { createDeliveryStore, type DeliveryStore } from '../../consumers/dispatcher/delivery-store.ts';
import { createIntegrationRepository, type IntegrationRepository } from '../../registry/repository.ts';
import type { IntegrationRecord } from '../../registry/integrations.ts';
import { ACKS_ALL, type KafkaClient, type Producer } from '../../lib/kafka/index.ts';
import type { Logger } from '../../lib/logger.ts';
import type { EventCodec } from '../../lib/serde.ts';
import { startSandbox, type Sandbox } from '../../sandbox/server.ts';
import { createDeliveryConsumer, type DeliveryConsumer } from '../../consumers/dispatcher/index.ts';
import { testConfig, uniqueName } from '../support/config.ts';
import { waitFor } from '../support/wait.ts';

export interface Pipeline {
  config: Config;
  logger: Logger;
  kafka: KafkaClient;
  producer: Producer;
  codec: EventCodec;
  pool: Pool;
  repo: IntegrationRepository;
  /** The delivery log (the dispatcher's; tests read and seed it). */
  deliveries: DeliveryStore;
  sandbox: Sandbox;
  integration: IntegrationRecord;
  tenant: string;
  jobId: string;
  event(overrides?: Partial<ApplicationSubmitted>): ApplicationSubmitted;
  publish(event: ApplicationSubmitted, topic?: string): Promise<void>;
  close(): Promise<void>;
}

export const GREENHOUSE_USER = '4080';

export async function startPipeline(overrides: Record<string, string> = {}): Promise<Pipeline> {
  const config = testConfig({
    TOPIC_APPLICATIONS: uniqueName('apps'),
    TOPIC_PARTITIONS: '3',
    RETRY_TIERS: 'retry-a:1000,retry-b:1500,retry-c:2000',
    CIRCUIT_FAILURE_THRESHOLD: '1000',
    ATS_REQUEST_TIMEOUT_MS: '3000',
    SHUTDOWN_TIMEOUT_MS: '15000',
    // The sandbox tenant has no limit; the vendor default (50 per 10 s) would make these tests slow.
    ATS_RATE_LIMITS: 'greenhouse=none',
    ...overrides,
  });
  const { logger, kafka, producer, codec, close: closeBase } = await startPipelineBase(config);
  const pool = createPool(config.database, { max: 4 });
  const repo = createIntegrationRepository({ pool, keyring: new Keyring(config.crypto.encryptionKeys) });
  const sandbox = await startSandbox({ port: 0 });
  const tenant = uniqueName('acme');
  const jobId = String(100_000 + Math.floor(Math.random() * 800_000));
  sandbox.addTenant({ platform: 'greenhouse', tenant, credentials: { apiKey: `key-${randomUUID()}` }, users: [GREENHOUSE_USER], jobs: [jobId], rateLimit: null });
  const apiKey = [...sandbox.state.tenants.values()].find((t) => t.spec.tenant === tenant)!.spec.credentials.apiKey!;
  const companyId = uniqueName('company');
  const integration = await repo.createIntegration(companyId, {
    platform: 'greenhouse',
    name: 'Greenhouse (sandbox)',
    settings: { apiVersion: 'v1', onBehalfOf: GREENHOUSE_USER },
    credentials: { apiKey },
    apiBaseUrl: sandbox.urlFor('greenhouse', tenant),
    enabled: true,
    allowMissingResume: false,
  });
  const resume = sandbox.addFile(`${tenant}-cv.pdf`, Buffer.from('%PDF-1.4\nsandbox resume\n%%EOF\n'), 'application/pdf');

  return {
    config,
    logger,
    kafka,
    producer,
    codec,
    pool,
    repo,
    deliveries: createDeliveryStore(pool),
    sandbox,
    integration,
    tenant,
    jobId,
    event(o = {}) {
      return sampleEvent({ companyId, integrationId: integration.id, platform: 'greenhouse', atsJobId: jobId, resume, ...o });
    },
    async publish(event, topic = config.topics.applications) {
      await producer.send({ topic, acks: ACKS_ALL, messages: [{ key: event.applicationId, value: await codec.encode(event) }] });
    },
    async close() {
      await closeBase();
      await sandbox.close();
      await pool.end();
    },
  };
}

export { readTopic } from '../support/topic-reader.ts';

export { waitFor };

/** The dispatcher and every retry tier of the pipeline, in process, in groups of their own, joined. */
export async function startDeliveryConsumers(p: Pipeline): Promise<DeliveryConsumer[]> {
  const suffix = uniqueName('g');
  const consumers = [
    createDeliveryConsumer({ config: p.config, logger: p.logger, role: { role: 'dispatcher' }, options: { groupId: `dispatcher-${suffix}` } }),
    ...p.config.topics.retryTiers.map((tier) =>
      createDeliveryConsumer({ config: p.config, logger: p.logger, role: { role: 'retry', tier: tier.name }, options: { groupId: `${tier.name}-${suffix}` } }),
    ),
  ];
  await Promise.all(consumers.map((c) => c.start()));
  await waitFor('consumers to join', async () => consumers.every((c) => c.ready), 30_000);
  return consumers;
}
