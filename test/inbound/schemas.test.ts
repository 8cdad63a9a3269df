/**
 * The way back's contracts through the real registry: ApplicationStatusChanged and JobSynced register
 * under <topic>-value with BACKWARD compatibility, round-trip, and evolve both ways when a field is
 * added with a default; a field without a default is refused.
 */
import type avro from 'avsc';
import { describe, expect, it } from 'vitest';
import type { ApplicationStatusChanged, JobSynced } from '../../lib/inbound-events.ts';
import { createEventCodec, JOB_SCHEMA_FILE, loadSchemaFile, STATUS_SCHEMA_FILE } from '../../lib/serde.ts';
import { independentDecode } from '../events/support.ts';
import { testConfig, uniqueName } from '../support/config.ts';

const registryUrl = testConfig().schemaRegistry.url;

const status: ApplicationStatusChanged = {
  eventId: '9b2e7c1a-0d0b-4c55-8d7e-3f2f0e6c9a11',
  occurredAt: 1_767_225_600_123,
  receivedAt: 1_767_225_601_000,
  applicationId: 'app-1',
  companyId: 'acme',
  integrationId: '7c9e6679-7425-40de-944b-e07fc1f90ae7',
  platform: 'greenhouse',
  status: 'interview',
  rawStage: 'Face to Face',
  vendorEvent: 'candidate_stage_change',
  vendorEventId: null,
  externalApplicationId: '4012',
  externalCandidateId: '4011',
  reason: null,
};

const job: JobSynced = {
  eventId: '1e0c7a52-3f0c-4a8e-9b5a-1c2d3e4f5a6b',
  occurredAt: 1_767_225_600_123,
  change: 'opened',
  companyId: 'acme',
  integrationId: '7c9e6679-7425-40de-944b-e07fc1f90ae7',
  platform: 'lever',
  externalJobId: 'job-1',
  title: 'Engineer',
  status: 'open',
  requisitionCode: 'REQ-1',
  location: null,
  mappedJobId: null,
  syncRunId: '2b1f1c8e-5d3a-4b7c-8e9f-0a1b2c3d4e5f',
};

function plus(file: URL, field: object): avro.Schema {
  const v1 = loadSchemaFile(file) as { fields: object[] };
  return { ...v1, fields: [...v1.fields, field] } as avro.Schema;
}

describe('ApplicationStatusChanged and JobSynced contracts', () => {
  it('every field is documented', () => {
    for (const file of [STATUS_SCHEMA_FILE, JOB_SCHEMA_FILE]) {
      const schema = loadSchemaFile(file) as { doc?: string; fields: Array<{ name: string; doc?: string }> };
      expect(schema.doc).toBeTruthy();
      expect(schema.fields.filter((f) => !f.doc).map((f) => f.name)).toEqual([]);
    }
  });

  it.each([
    ['status', STATUS_SCHEMA_FILE, status],
    ['jobs', JOB_SCHEMA_FILE, job],
  ] as const)('%s: registers with BACKWARD compatibility; an independent decoder reads the bytes', async (prefix, file, event) => {
    const topic = uniqueName(prefix);
    const codec = createEventCodec<unknown>({ registryUrl, topic, schema: loadSchemaFile(file) });
    const bytes = await codec.encode(event);
    const cfg = (await (await fetch(`${registryUrl}/config/${topic}-value`)).json()) as { compatibilityLevel: string };
    expect(cfg.compatibilityLevel).toBe('BACKWARD');
    expect((await independentDecode(registryUrl, bytes)).value).toEqual(event);
    expect(await codec.decode(bytes)).toEqual(event);
  });

  it('ApplicationStatusChanged evolves: v2 adds an optional field; v1 reads v2 records and v2 reads v1 records', async () => {
    const topic = uniqueName('status');
    const v1 = createEventCodec<ApplicationStatusChanged>({ registryUrl, topic, schema: loadSchemaFile(STATUS_SCHEMA_FILE) });
    const v2 = createEventCodec<ApplicationStatusChanged & { recruiterEmail: string | null }>({
      registryUrl,
      topic,
      schema: plus(STATUS_SCHEMA_FILE, { name: 'recruiterEmail', type: ['null', 'string'], default: null, doc: 'Who moved the candidate.' }),
    });
    expect(await v2.register()).not.toBe(await v1.register());
    const v2Bytes = await v2.encode({ ...status, recruiterEmail: 'r@example.com' });
    const v1Bytes = await v1.encode(status);
    expect(await v1.decode(v2Bytes)).toEqual(status);
    expect(await v2.decode(v1Bytes)).toEqual({ ...status, recruiterEmail: null });
  });

  it('refuses a breaking change to ApplicationStatusChanged: a new field without a default', async () => {
    const topic = uniqueName('status');
    await createEventCodec<unknown>({ registryUrl, topic, schema: loadSchemaFile(STATUS_SCHEMA_FILE) }).register();
    const err = await createEventCodec<unknown>({ registryUrl, topic, schema: plus(STATUS_SCHEMA_FILE, { name: 'mandatory', type: 'string' }) })
      .register()
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'schema_rejected', retriable: false });
  });
});
