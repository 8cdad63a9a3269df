/**
 * `npm run publish -- --count N [--company ID] [--rate R]`: publish realistic generated applications,
 * for the demo and the benchmarks. On the local stack as is, it migrates the database, ensures the
 * topics, and creates a demo company with a Greenhouse integration on the ATS sandbox if needed.
 */
import { randomInt } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { migrate } from '../db/migrate.ts';
import { numberFlag, runMain } from '../lib/cli.ts';
import { Keyring } from '../registry/keyring.ts';
import { createPool, inTransaction } from '../lib/db.ts';
import { createIntegrationRepository } from '../registry/repository.ts';
import { createKafka, withAdmin } from '../lib/kafka/index.ts';
import { createLogger } from '../lib/logger.ts';
import { ensureTopics, topicSpecs } from '../lib/topics.ts';
import { DEMO_COMPANY_ID, ensureDemoCompany, registerSandboxTenant, sandboxDocuments } from './demo-company.ts';
import { createEventCodec } from '../lib/serde.ts';
import { enqueueApplication } from '../producers/outbox/enqueue.ts';
import { createApplicationPublisher, type PublishResult } from '../producers/publisher.ts';
import { sampleApplications } from './sample-application.ts';

await runMain({
  name: 'publish',
  usage: `Usage: npm run publish -- [--count N] [--company ID] [--rate R] [--outbox] [--concurrency C] [--seed S]

Publishes N generated applications (names, contacts, links, screening answers, resume and cover-letter
references) for the company, one event per enabled integration with the job mapped. The documents are
served by the ATS sandbox (uploaded once per run), so the dispatcher can fetch them.

  --count N        applications to publish (default 5)
  --company ID     company id (default ${DEMO_COMPANY_ID}; created with a sandbox integration if it has none)
  --rate R         at most R applications per second (default: as fast as possible)
  --outbox         write them to the outbox (npm run outbox-relay publishes) instead of publishing directly
  --concurrency C  publishes in flight (default 16)
  --seed S         seed of the generator (default: random)
  --sandbox-url U  ATS sandbox the demo integration points at (default http://127.0.0.1:ATS_SANDBOX_PORT)

Creating the demo integration needs ATS_RELAY_ENCRYPTION_KEYS (credentials are stored encrypted).`,
  options: {
    count: { type: 'string' },
    company: { type: 'string' },
    rate: { type: 'string' },
    outbox: { type: 'boolean' },
    concurrency: { type: 'string' },
    seed: { type: 'string' },
    'sandbox-url': { type: 'string' },
  },
  async run({ config, values, onShutdown, shutdownRequested }) {
    const count = numberFlag('count', values.count, 1) ?? 5;
    const rate = numberFlag('rate', values.rate, 0.001);
    const concurrency = values.outbox ? 1 : (numberFlag('concurrency', values.concurrency, 1) ?? 16);
    const companyId = values.company ?? DEMO_COMPANY_ID;
    const sandboxUrl = (values['sandbox-url'] ?? `http://127.0.0.1:${config.http.sandboxPort}`).replace(/\/+$/, '');
    const tty = process.stderr.isTTY;
    const say = (line: string): void => void process.stderr.write(`${line}\n`);
    const logger = createLogger({ level: config.log.level, name: 'publish' });

    await migrate(config.database.url);
    const pool = createPool(config.database, { max: concurrency + 2, applicationName: 'ats-relay-publish' });
    onShutdown(() => pool.end());
    const kafka = createKafka(config.kafka, logger, { clientIdSuffix: 'publish' });
    const drift = (await withAdmin(kafka, (admin) => ensureTopics(admin, topicSpecs(config.topics)))).filter((r) => r.status === 'drift');
    for (const r of drift) say(`warning: topic ${r.topic} differs from the configuration: ${r.drift.join('; ')} (see npm run topics -- describe)`);

    const company = await ensureDemoCompany({
      pool,
      repo: () => createIntegrationRepository({ pool, keyring: new Keyring(config.crypto.encryptionKeys) }),
      companyId,
      sandboxUrl,
      say,
    });
    if (companyId === DEMO_COMPANY_ID && !company.createdIntegrationId) await registerSandboxTenant(sandboxUrl, say);
    const documents = await sandboxDocuments(sandboxUrl, say);

    const publisher = createApplicationPublisher({ kafka: config.kafka, registryUrl: config.schemaRegistry.url, topic: config.topics.applications, pool, logger });
    onShutdown(() => publisher.close());
    await publisher.start();

    // Rows carry the encoded record once this codec knows the schema id; with the registry down they
    // carry JSON, which the relay encodes — the outbox never waits on the registry.
    const outboxCodec = createEventCodec({ registryUrl: config.schemaRegistry.url, topic: config.topics.applications });
    if (values.outbox) await outboxCodec.register().catch((err: unknown) => say(`warning: ${(err as Error).message}; outbox rows carry JSON until it is back`));

    const generate = sampleApplications({ companyId, jobIds: company.jobIds, seed: values.seed === undefined ? randomInt(2 ** 31) : Number(values.seed) });
    const publishOne = async (): Promise<PublishResult | { status: 'enqueued'; events: unknown[] }> => {
      const generated = generate.next();
      const input = documents ? { ...generated, resume: generated.resume && documents.resume, coverLetter: generated.coverLetter && documents.coverLetter } : generated;
      if (!values.outbox) return publisher.publishApplication(input);
      const result = await inTransaction(pool, (client) => enqueueApplication(client, input, { topic: config.topics.applications, codec: outboxCodec }));
      return result.status === 'enqueued' ? result : (result as PublishResult);
    };

    let started = 0;
    let done = 0;
    let events = 0;
    let failed = 0;
    let stopped = false;
    void shutdownRequested.then(() => (stopped = true));
    const outcomes = new Map<string, number>();
    const partitions = new Set<number>();
    const t0 = performance.now();
    const progress = (final = false): void => {
      const s = (performance.now() - t0) / 1000;
      const line = `${done}/${count} applications, ${events} events${failed ? `, ${failed} failed` : ''} — ${(done / Math.max(s, 0.001)).toFixed(0)}/s`;
      if (tty) process.stderr.write(`\r${line}${final ? '\n' : ''}`);
      else if (final) say(line);
    };
    const timer = tty ? setInterval(() => progress(), 200) : undefined;

    const worker = async (): Promise<void> => {
      while (!stopped && started < count) {
        const i = started++;
        if (rate) {
          const due = t0 + (i * 1000) / rate;
          const wait = due - performance.now();
          if (wait > 0) await sleep(wait);
        }
        try {
          const result = await publishOne();
          outcomes.set(result.status, (outcomes.get(result.status) ?? 0) + 1);
          if (result.status === 'published') {
            events += result.events.length;
            for (const e of result.events) partitions.add(e.partition);
          } else if (result.status === 'enqueued') events += result.events.length;
        } catch (err) {
          failed += 1;
          if (tty) process.stderr.write('\n');
          say(`failed: ${(err as Error).message}`);
        }
        done += 1;
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
    clearInterval(timer);
    progress(true);
    const summary = [...outcomes].map(([k, v]) => `${k}: ${v}`).join(', ');
    const where = values.outbox ? 'outbox (run npm run outbox-relay to publish)' : `${config.topics.applications} (partitions ${[...partitions].sort((a, b) => a - b).join(', ')})`;
    console.log(`company ${companyId}: ${summary || 'nothing'} → ${where}`);
    return failed ? 1 : 0;
  },
});
