/**
 * One scenario's world: its own topics (short retry ladder), consumer groups, S3 prefix and alert
 * recipient; an in-process ATS sandbox with several Greenhouse customers (one healthy but slow,
 * one flaky, one with wrong credentials stored); every consumer role as a separate supervised
 * process; and a steady load of applications.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { ApplicationSubmitted, DocumentRef } from '../../lib/application.ts';
import { envFromConfig, loadConfig, type Config } from '../../lib/config.ts';
import { Keyring } from '../../registry/keyring.ts';
import { createPool, type Pool } from '../../lib/db.ts';
import { createIntegrationRepository } from '../../registry/repository.ts';
import type { IntegrationRecord } from '../../registry/integrations.ts';
import { ACKS_ALL, createKafka, createProducer, withAdmin, type KafkaClient, type OutboundRecord, type Producer } from '../../lib/kafka/index.ts';
import { createLogger } from '../../lib/logger.ts';
import { createEventCodec, type EventCodec } from '../../lib/serde.ts';
import { ensureTopics, topicSpecs } from '../../lib/topics.ts';
import { startSandbox, type Sandbox } from '../../sandbox/server.ts';
import { createSupervisor, type RoleSpec, type Supervisor } from './supervisor.ts';

export interface Customer {
  name: string;
  tenant: string;
  companyId: string;
  integration: IntegrationRecord;
  jobId: string;
  resume: DocumentRef;
}

export interface World {
  run: string;
  config: Config;
  kafka: KafkaClient;
  producer: Producer;
  codec: EventCodec;
  pool: Pool;
  sandbox: Sandbox;
  customers: Customer[];
  supervisor: Supervisor;
  /** Roles by slot name (dispatcher#1, retry-a, …, dlq-s3, alerts). */
  roles: Map<string, RoleSpec>;
  /** Application ids published, by customer name. */
  published: Map<string, string[]>;
  /** Where each published application went: main-topic partition and when the broker acknowledged it. */
  placed: Map<string, { partition: number; at: number }>;
  /**
   * Applications whose send failed without an answer (the broker went away mid-request): maybe
   * written, maybe not. The audit counts one as published only if it shows up anywhere.
   */
  unacknowledged: Set<string>;
  event(customer: Customer): ApplicationSubmitted;
  publish(events: ApplicationSubmitted[]): Promise<void>;
  send(messages: OutboundRecord[]): Promise<void>;
  /** Publish `ratePerSecond` applications round-robin over the customers until `stop()`. */
  load(ratePerSecond: number): { stop(): Promise<void> };
  dispatcherSpec(n: number): RoleSpec;
  close(): Promise<void>;
}

export interface WorldOptions {
  partitions: number;
  say: (line: string) => void;
  env?: Record<string, string>;
}

const GREENHOUSE_USER = '4080';

export async function startWorld(base: Config, opts: WorldOptions): Promise<World> {
  const run = randomBytes(3).toString('hex');
  const sandbox = await startSandbox({ port: 0 });
  const config = loadConfig({
    ...envFromConfig(base),
    TOPIC_APPLICATIONS: `chaos-${run}.applications`,
    TOPIC_PARTITIONS: String(opts.partitions),
    RETRY_TIERS: 'retry-a:1000,retry-b:1500,retry-c:2000',
    S3_PREFIX: `chaos-${run}`,
    ALERT_EMAIL_TO: `chaos-${run}@localhost`,
    ALERT_WINDOW_MS: '3000',
    ALERT_MAX_EMAILS_PER_HOUR: '10000',
    DLQ_ARCHIVE_MAX_AGE_MS: '2000',
    CIRCUIT_FAILURE_THRESHOLD: '1000',
    ATS_REQUEST_TIMEOUT_MS: '3000',
    ATS_ALLOW_PRIVATE_NETWORKS: 'true',
    ATS_RATE_LIMITS: 'greenhouse=none',
    SHUTDOWN_TIMEOUT_MS: '15000',
    LOG_LEVEL: 'warn',
    ...opts.env,
  });
  const logger = createLogger({ level: 'warn', name: 'chaos' });
  const kafka = createKafka(config.kafka, logger, { clientIdSuffix: 'chaos' });
  const specs = topicSpecs(config.topics);
  await withAdmin(kafka, (admin) => ensureTopics(admin, specs));
  const producer = createProducer(kafka);
  await producer.connect();
  // The harness's own producer side talks to the registry directly: an outage scenario takes the
  // registry away from the pipeline's processes, not from the candidate backend.
  const codec = createEventCodec({ registryUrl: base.schemaRegistry.url, topic: config.topics.applications });
  await codec.register();
  const pool = createPool(config.database, { max: 4, applicationName: 'chaos-harness' });
  const repo = createIntegrationRepository({ pool, keyring: new Keyring(config.crypto.encryptionKeys) });

  // Sandbox faults, on for the whole run: Acme answers slowly (so kills land mid-call), Globex
  // fails one create in five with a 503 (the retry tiers work), Initech's stored key is wrong
  // (every application dead-lettered at once with auth_failed).
  const customers: Customer[] = [];
  for (const [name, story] of [['acme', 'slow'], ['globex', 'flaky'], ['initech', 'bad-credentials']] as const) {
    const tenant = `${name}-${run}`;
    const jobId = String(100_000 + Math.floor(Math.random() * 800_000));
    const apiKey = `key-${randomUUID()}`;
    sandbox.addTenant({ platform: 'greenhouse', tenant, credentials: { apiKey }, users: [GREENHOUSE_USER], jobs: [jobId], rateLimit: null });
    const companyId = `${name}-${run}`;
    const integration = await repo.createIntegration(companyId, {
      platform: 'greenhouse',
      name: `${name} (chaos sandbox)`,
      settings: { apiVersion: 'v1', onBehalfOf: GREENHOUSE_USER },
      credentials: { apiKey: story === 'bad-credentials' ? `wrong-${randomUUID()}` : apiKey },
      apiBaseUrl: sandbox.urlFor('greenhouse', tenant),
      enabled: true,
      allowMissingResume: false,
    });
    const resume = sandbox.addFile(`${tenant}-cv.pdf`, Buffer.from('%PDF-1.4\nchaos resume\n%%EOF\n'), 'application/pdf');
    if (story === 'slow') sandbox.addFault({ kind: 'latency', ms: 40, platform: 'greenhouse', tenant });
    if (story === 'flaky') sandbox.addFault({ kind: 'error', status: 503, rate: 0.2, platform: 'greenhouse', tenant, method: 'POST' });
    customers.push({ name, tenant, companyId, integration, jobId, resume });
  }

  const env = envFromConfig(config);
  const say = opts.say;
  const supervisor = createSupervisor(env, say);
  const roles = new Map<string, RoleSpec>();
  const group = (role: string): string => `chaos-${run}.${role}`;
  const dispatcherSpec = (n: number): RoleSpec => ({ name: `dispatcher#${n}`, args: ['--role', 'dispatcher'], group: group('dispatcher'), topic: config.topics.applications });
  const all: RoleSpec[] = [
    dispatcherSpec(1),
    ...config.topics.retryTiers.map((t) => ({ name: t.name, args: ['--role', 'retry', '--tier', t.name], group: group(t.name), topic: t.topic })),
    { name: 'dlq-s3', args: ['--role', 'dlq-s3'], group: group('dlq-s3'), topic: config.topics.dlq },
    { name: 'alerts', args: ['--role', 'alerts'], group: group('alerts'), topic: config.topics.dlq },
  ];
  try {
    for (const spec of all) {
      roles.set(spec.name, spec);
      await supervisor.start(spec);
    }
    await supervisor.waitReady(240_000);
  } catch (err) {
    // A world that never came up leaves nothing behind: no orphaned consumers, no topics.
    await supervisor.close();
    await producer.disconnect().catch(() => undefined);
    await withAdmin(kafka, (a) => a.deleteTopics(specs.map((s) => s.topic))).catch(() => undefined);
    await sandbox.close();
    await pool.end();
    throw err;
  }

  const published = new Map<string, string[]>(customers.map((c) => [c.name, []]));
  const placed = new Map<string, { partition: number; at: number }>();
  const unacknowledged = new Set<string>();

  function event(c: Customer): ApplicationSubmitted {
    const applicationId = randomUUID();
    return {
      eventId: randomUUID(),
      occurredAt: Date.now(),
      applicationId,
      companyId: c.companyId,
      integrationId: c.integration.id,
      platform: 'greenhouse',
      jobId: `job-${c.jobId}`,
      atsJobId: c.jobId,
      candidate: { firstName: 'Chaos', lastName: 'Monkey', email: `chaos+${applicationId}@example.org`, phone: null, location: null, links: [] },
      resume: c.resume,
      coverLetter: null,
      screeningAnswers: [],
      source: 'ats-relay chaos',
      consent: { dataProcessing: true, marketing: false },
      extras: {},
    };
  }

  async function send(messages: OutboundRecord[]): Promise<void> {
    await producer.send({ topic: config.topics.applications, acks: ACKS_ALL, messages });
  }

  async function publish(events: ApplicationSubmitted[]): Promise<void> {
    const messages: OutboundRecord[] = await Promise.all(events.map(async (e) => ({ key: e.applicationId, value: await codec.encode(e) })));
    const positions = await producer.send({ topic: config.topics.applications, acks: ACKS_ALL, messages });
    const at = Date.now();
    events.forEach((e, i) => placed.set(e.applicationId, { partition: positions[i]?.partition ?? -1, at }));
    // Counted once acknowledged: an application the broker never took is not the pipeline's to lose.
    for (const e of events) published.get(customers.find((c) => c.integration.id === e.integrationId)!.name)!.push(e.applicationId);
  }

  function load(ratePerSecond: number): { stop(): Promise<void> } {
    let stopped = false;
    let i = 0;
    const tickMs = 250;
    const perTick = Math.max(1, Math.round((ratePerSecond * tickMs) / 1000));
    const loop = (async () => {
      while (!stopped) {
        const t0 = Date.now();
        const batch = Array.from({ length: perTick }, () => event(customers[i++ % customers.length]!));
        // A batch the broker did not acknowledge is not counted as published (unless it arrives); the load goes on.
        await publish(batch).catch((err: Error) => {
          for (const e of batch) unacknowledged.add(e.applicationId);
          say(`   publish failed (${err.message}); continuing`);
        });
        await new Promise((r) => setTimeout(r, Math.max(0, tickMs - (Date.now() - t0))));
      }
    })();
    return {
      async stop() {
        stopped = true;
        await loop;
      },
    };
  }

  return {
    run,
    config,
    kafka,
    producer,
    codec,
    pool,
    sandbox,
    customers,
    supervisor,
    roles,
    published,
    placed,
    unacknowledged,
    event,
    publish,
    send,
    load,
    dispatcherSpec,
    async close() {
      await supervisor.close();
      await producer.disconnect().catch(() => undefined);
      await withAdmin(kafka, (a) => a.deleteTopics(specs.map((s) => s.topic))).catch(() => undefined);
      await sandbox.close();
      await pool.end();
    },
  };
}
