/**
 * publishApplication on real Kafka, registry and PostgreSQL: what is published is what was given
 * (through our decoder and an independent one), invalid input sends nothing, and every outcome
 * without an event is typed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RelayError } from '../../lib/errors.ts';
import { createLogger } from '../../lib/logger.ts';
import { createEventCodec } from '../../lib/serde.ts';
import { validateApplicationInput, type ApplicationInput } from '../../producers/application-input.ts';
import { eventIdFor } from '../../producers/enrichment.ts';
import { createApplicationPublisher, EVENT_ID_HEADER, type ApplicationPublisher } from '../../producers/publisher.ts';
import { sampleApplications } from '../../dev/sample-application.ts';
import { sampleIntegration } from '../registry/support.ts';
import { companyWith, consume, eventsHarness, independentDecode, recordCount } from './support.ts';

const h = eventsHarness();
let publisher: ApplicationPublisher;

beforeAll(async () => {
  await h.createTopics();
  publisher = createApplicationPublisher({ kafka: h.config.kafka, registryUrl: h.config.schemaRegistry.url, topic: h.topic, pool: h.pool, logger: h.logger });
  await publisher.start();
});
afterAll(async () => {
  await publisher.close();
  await h.close();
});

function application(companyId: string, jobId = 'job-1'): ApplicationInput {
  return sampleApplications({ companyId, jobIds: [jobId], seed: 7 }).next();
}

describe('publishApplication', () => {
  it('publishes one event, keyed by application id, that decodes to the input plus enrichment', async () => {
    const company = await companyWith(h.repo, ['greenhouse'], ['job-1']);
    const input = application(company.companyId);
    const result = await publisher.publishApplication(input);
    expect(result.status).toBe('published');
    if (result.status !== 'published') return;
    const [sent] = result.events;
    const integration = company.integrations[0]!;
    expect(sent).toMatchObject({ topic: h.topic, integrationId: integration.id, platform: 'greenhouse', eventId: eventIdFor(input.applicationId, integration.id) });

    const records = await consume(h.kafka, h.topic, 1);
    expect(records).toHaveLength(1);
    const record = records[0]!;
    expect(record.key).toBe(input.applicationId);
    expect(record.headers[EVENT_ID_HEADER]).toBe(sent!.eventId);
    expect({ partition: record.partition, offset: record.offset }).toEqual({ partition: sent!.partition, offset: sent!.offset });

    const expected = {
      ...(validateApplicationInput(input) as { ok: true; value: object }).value,
      eventId: sent!.eventId,
      integrationId: integration.id,
      platform: 'greenhouse',
      atsJobId: 'ats-job-1',
    };
    const decoded = await createEventCodec({ registryUrl: h.config.schemaRegistry.url, topic: h.topic }).decode(record.value);
    expect(decoded).toEqual(expected);
    expect(decoded.occurredAt).toBe(input.occurredAt);
    // The same bytes through avsc and the schema fetched by id over plain HTTP.
    expect((await independentDecode(h.config.schemaRegistry.url, record.value)).value).toEqual(expected);
  });

  it('publishes one event per enabled integration, all on the application\'s partition, and names unmapped ones', async () => {
    const company = await companyWith(h.repo, ['greenhouse', 'lever'], ['job-1']);
    const unmapped = await h.repo.createIntegration(company.companyId, sampleIntegration('workable'));
    const disabled = await h.repo.createIntegration(company.companyId, { ...sampleIntegration('ashby'), enabled: false });
    await h.repo.putJobMapping(disabled.id, 'job-1', 'x');

    const result = await publisher.publishApplication(application(company.companyId));
    expect(result.status).toBe('published');
    if (result.status !== 'published') return;
    expect(result.events.map((e) => e.integrationId)).toEqual(company.integrations.map((i) => i.id));
    expect(result.unmapped).toEqual([unmapped.id]);
    expect(new Set(result.events.map((e) => e.partition)).size).toBe(1);
    expect(BigInt(result.events[1]!.offset) - BigInt(result.events[0]!.offset)).toBe(1n);
    expect(new Set(result.events.map((e) => e.eventId)).size).toBe(2);
  });

  it('rejects invalid input naming every bad field, and sends nothing', async () => {
    const company = await companyWith(h.repo, ['greenhouse'], ['job-1']);
    const before = await recordCount(h.kafka, h.topic);
    const input = application(company.companyId);
    const bad = {
      ...input,
      applicationId: '',
      candidate: { ...input.candidate, email: 'not-an-email', links: [{ type: 'github', url: 'ftp://x' }] },
      resume: { url: 'https://files.example.com/r.pdf', fileName: 'r.pdf', contentType: 'application/pdf', sizeBytes: -1, sha256: 'ABC' },
      consent: { dataProcessing: false, marketing: 'yes' },
      unexpected: 1,
    } as unknown as ApplicationInput;
    const err = await publisher.publishApplication(bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RelayError);
    expect(err).toMatchObject({ code: 'invalid_input', retriable: false });
    const fields = ((err as RelayError).context.fields as Array<{ field: string; message: string }>).map((f) => f.field);
    expect(fields).toEqual(
      expect.arrayContaining([
        'applicationId',
        'candidate.email',
        'candidate.links[0].url',
        'resume.sizeBytes',
        'resume.sha256',
        'consent.dataProcessing',
        'consent.marketing',
        'unexpected',
      ]),
    );
    expect((err as RelayError).message).toContain('candidate.email: must be an e-mail address');
    expect(await recordCount(h.kafka, h.topic)).toBe(before);
  });

  it('refuses blank text as trim() does (every Unicode space and line break) and keeps text with spaces inside', () => {
    const input = application('company-1');
    for (const blank of ['', ' ', '\t\n', '\u00a0\u2003', '\ufeff\u2028']) {
      const result = validateApplicationInput({ ...input, source: blank });
      expect(result).toMatchObject({ ok: false, errors: [{ field: 'source', message: 'must not be empty' }] });
    }
    expect(validateApplicationInput({ ...input, source: ' job board ' })).toMatchObject({ ok: true, value: { source: ' job board ' } });
  });

  it('derives the same event ids as before (UUIDv5 of application and integration): retries and outbox copies deduplicate across versions', () => {
    expect(eventIdFor('app-1', '6f1c2d3e-1111-4222-8333-944455556666')).toBe('f9428b9e-432f-5f56-ad4b-027f63bc6d43');
    expect(eventIdFor('ä-ß', 'x')).toBe('22e86437-f159-5a0c-85c5-6c96acb6291a');
  });

  it('answers no-integration / no-job-mapping without sending', async () => {
    const before = await recordCount(h.kafka, h.topic);
    const nobody = await publisher.publishApplication(application('company-without-integrations-' + Date.now()));
    expect(nobody).toMatchObject({ status: 'no-integration' });
    const company = await companyWith(h.repo, ['lever'], ['job-1']);
    const unmappedJob = await publisher.publishApplication(application(company.companyId, 'job-unmapped'));
    expect(unmappedJob).toEqual({ status: 'no-job-mapping', companyId: company.companyId, jobId: 'job-unmapped', integrationIds: [company.integrations[0]!.id] });
    expect(await recordCount(h.kafka, h.topic)).toBe(before);
  });

  it('shares produce requests between concurrent publishes; each result names its own record', async () => {
    const company = await companyWith(h.repo, ['greenhouse'], ['job-1']);
    const inputs = Array.from({ length: 60 }, (_, i) => sampleApplications({ companyId: company.companyId, jobIds: ['job-1'], seed: 100 + i }).next());
    const before = await recordCount(h.kafka, h.topic);
    const results = await Promise.all(inputs.map((input) => publisher.publishApplication(input)));
    const records = await consume(h.kafka, h.topic, before + inputs.length);
    const at = new Map(records.map((r) => [`${r.partition}/${r.offset}`, r]));
    results.forEach((result, i) => {
      expect(result.status).toBe('published');
      if (result.status !== 'published') return;
      const record = at.get(`${result.events[0]!.partition}/${result.events[0]!.offset}`);
      expect(record?.key).toBe(inputs[i]!.applicationId);
      expect(record?.headers[EVENT_ID_HEADER]).toBe(result.events[0]!.eventId);
    });
  });

  it('close() lets the publishes under way finish, then refuses new ones; without start() the first publish registers and connects', async () => {
    const company = await companyWith(h.repo, ['greenhouse'], ['job-1']);
    const fresh = createApplicationPublisher({ kafka: h.config.kafka, registryUrl: h.config.schemaRegistry.url, topic: h.topic, pool: h.pool, logger: h.logger });
    const inputs = Array.from({ length: 20 }, (_, i) => sampleApplications({ companyId: company.companyId, jobIds: ['job-1'], seed: 300 + i }).next());
    const statuses: string[] = [];
    const running = inputs.map((input) => fresh.publishApplication(input).then((r) => statuses.push(r.status)));
    await fresh.close();
    expect(statuses).toEqual(inputs.map(() => 'published'));
    await Promise.all(running);
    await expect(fresh.publishApplication(inputs[0]!)).rejects.toThrow('publisher is closed');
  });

  it('fails with a retriable error, after bounded retries, when the broker or the registry is down', async () => {
    const company = await companyWith(h.repo, ['greenhouse'], ['job-1']);
    const brokerDown = createApplicationPublisher({
      kafka: { ...h.config.kafka, brokers: ['127.0.0.1:9'] },
      registryUrl: h.config.schemaRegistry.url,
      topic: h.topic,
      pool: h.pool,
      logger: createLogger({ level: 'silent' }), // the connection errors are expected here
      connectRetry: { retries: 1, initialRetryTime: 50, maxRetryTime: 100 },
    });
    const t0 = Date.now();
    await expect(brokerDown.publishApplication(application(company.companyId))).rejects.toMatchObject({ code: 'kafka_unavailable', retriable: true });
    expect(Date.now() - t0).toBeLessThan(15_000);
    await brokerDown.close();

    const registryDown = createApplicationPublisher({
      kafka: h.config.kafka,
      registryUrl: 'http://127.0.0.1:9/apis/ccompat/v7',
      topic: h.topic,
      pool: h.pool,
      logger: h.logger,
      registryRetry: { retries: 1, maxRetryTimeInSecs: 0.2 },
    });
    await expect(registryDown.publishApplication(application(company.companyId))).rejects.toMatchObject({ code: 'registry_unavailable', retriable: true });
    await registryDown.close();
  });
});
