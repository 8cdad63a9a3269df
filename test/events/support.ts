/**
 * Shared set-up for the event tests: a config with a topic of the test's own, its topics created
 * through lib/topics.ts, a company with integrations and job mappings in the registry, a consumer
 * that collects what reached the topic, and an independent decoder (avsc + the schema fetched by id
 * over plain HTTP) that shares no code with lib/serde.ts.
 */
import avro from 'avsc';
import type { ApplicationSubmitted } from '../../lib/application.ts';
import type { Config } from '../../lib/config.ts';
import { createPool, type Pool } from '../../lib/db.ts';
import type { Platform } from '../../registry/integration.ts';
import { createKafka, scanTopic, withAdmin, type KafkaClient } from '../../lib/kafka/index.ts';
import { createLogger, type Logger } from '../../lib/logger.ts';
import { ensureTopics, existingTopics, topicSpecs } from '../../lib/topics.ts';
import { Keyring } from '../../registry/keyring.ts';
import { createIntegrationRepository, type IntegrationRepository } from '../../registry/repository.ts';
import { sampleIntegration } from '../registry/support.ts';
import { testConfig, uniqueName } from '../support/config.ts';

export interface EventsHarness {
  config: Config;
  topic: string;
  pool: Pool;
  repo: IntegrationRepository;
  kafka: KafkaClient;
  logger: Logger;
  /** Create the main, retry and DLQ topics of this harness (2 partitions each). */
  createTopics(): Promise<void>;
  close(): Promise<void>;
}

export function eventsHarness(overrides: Record<string, string> = {}): EventsHarness {
  const topic = uniqueName('apps');
  const config = testConfig({ TOPIC_APPLICATIONS: topic, TOPIC_PARTITIONS: '2', ...overrides });
  const pool = createPool(config.database, { max: 8 });
  const logger = createLogger({ level: config.log.level });
  const kafka = createKafka(config.kafka, logger, { clientIdSuffix: 'events-test' });
  const repo = createIntegrationRepository({ pool, keyring: new Keyring(config.crypto.encryptionKeys) });
  return {
    config,
    topic,
    pool,
    repo,
    kafka,
    logger,
    async createTopics() {
      await withAdmin(kafka, (admin) => ensureTopics(admin, topicSpecs(config.topics)));
    },
    async close() {
      await withAdmin(kafka, async (admin) => {
        const specs = topicSpecs(config.topics).map((s) => s.topic);
        const existing = await existingTopics(admin, specs);
        const ours = specs.filter((t) => existing.has(t));
        if (ours.length) await admin.deleteTopics(ours).catch(() => undefined);
      }).catch(() => undefined);
      await pool.query('DELETE FROM outbox WHERE topic = $1', [topic]).catch(() => undefined);
      await pool.end();
    },
  };
}

export interface CompanySetup {
  companyId: string;
  integrations: Array<{ id: string; platform: Platform }>;
}

/** A company with one integration per platform given, each mapping every job id to `ats-<jobId>`. */
export async function companyWith(repo: IntegrationRepository, platforms: Platform[], jobIds: string[]): Promise<CompanySetup> {
  const companyId = uniqueName('company');
  const integrations: CompanySetup['integrations'] = [];
  for (const platform of platforms) {
    const created = await repo.createIntegration(companyId, sampleIntegration(platform));
    for (const jobId of jobIds) await repo.putJobMapping(created.id, jobId, `ats-${jobId}`);
    integrations.push({ id: created.id, platform });
  }
  return { companyId, integrations };
}

export interface Consumed {
  key: string;
  value: Buffer;
  headers: Record<string, string>;
  partition: number;
  offset: string;
}

/** Read a topic from the beginning until `count` records arrived (or the timeout passed). */
export async function consume(kafka: KafkaClient, topic: string, count: number, timeoutMs = 20_000): Promise<Consumed[]> {
  const got: Consumed[] = [];
  await scanTopic(kafka, topic, {
    groupId: uniqueName('events-test'),
    timeoutMs,
    each(record, partition) {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(record.headers)) headers[k] = String(v);
      got.push({ key: String(record.key), value: record.value!, headers, partition, offset: record.offset });
      return got.length >= count;
    },
  });
  return got;
}

/** Number of records in a topic (sum of end offsets; the topics are never compacted or trimmed in tests). */
export async function recordCount(kafka: KafkaClient, topic: string): Promise<number> {
  return withAdmin(kafka, async (admin) => {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
  });
}

/**
 * Decode Confluent-framed Avro without lib/serde.ts: magic byte 0, 4-byte big-endian schema id,
 * Avro body; the writer schema comes from GET /schemas/ids/{id}.
 */
export async function independentDecode(registryUrl: string, bytes: Buffer): Promise<{ schemaId: number; value: unknown }> {
  if (bytes[0] !== 0) throw new Error(`magic byte is ${bytes[0]}, not 0`);
  const schemaId = bytes.readInt32BE(1);
  const res = await fetch(`${registryUrl}/schemas/ids/${schemaId}`);
  if (!res.ok) throw new Error(`registry answered ${res.status} for schema ${schemaId}`);
  const { schema } = (await res.json()) as { schema: string };
  const type = avro.Type.forSchema(JSON.parse(schema) as avro.Schema);
  return { schemaId, value: type.fromBuffer(bytes.subarray(5)) };
}

/** A complete event with every optional part filled. */
export function sampleEvent(overrides: Partial<ApplicationSubmitted> = {}): ApplicationSubmitted {
  return {
    eventId: '0f8fad5b-d9cb-469f-a165-70867728950e',
    occurredAt: 1_767_225_600_123,
    applicationId: 'app-1',
    companyId: 'acme',
    integrationId: '7c9e6679-7425-40de-944b-e07fc1f90ae7',
    platform: 'greenhouse',
    jobId: 'job-42',
    atsJobId: '4012345',
    candidate: {
      firstName: 'Zoë',
      lastName: "O'Brien",
      email: 'zoe@example.com',
      phone: '+49 30 1234567',
      location: { city: 'Berlin', region: null, country: 'DE' },
      links: [{ type: 'linkedin', url: 'https://www.linkedin.com/in/zoe' }],
    },
    resume: { url: 'https://files.example.com/r.pdf', fileName: 'zoe-cv.pdf', contentType: 'application/pdf', sizeBytes: 123_456, sha256: 'a'.repeat(64) },
    coverLetter: null,
    screeningAnswers: [{ questionId: 'q1', question: 'Notice period?', answer: '2 weeks' }],
    source: 'job-board',
    consent: { dataProcessing: true, marketing: false },
    extras: { utm_source: 'newsletter' },
    ...overrides,
  };
}
