/**
 * The archive never holds credentials: dead letters produced by a real dispatcher (a 401 from the
 * ATS sandbox sends them to the DLQ at once) are archived, and the objects are scanned for the
 * integration's API key, the S3 secret and secret-looking fields.
 */
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { createDeliveryConsumer } from '../../consumers/dispatcher/index.ts';
import { createDlqS3Sink, type DlqS3Sink } from '../../consumers/dlq-s3-sink/index.ts';
import { createS3Client } from '../../lib/s3.ts';
import { uniqueName } from '../support/config.ts';
import { readTopic, startPipeline } from '../dispatcher/support.ts';
import { readArchive, waitFor } from './support.ts';

const sinks: DlqS3Sink[] = [];
afterAll(async () => {
  await Promise.all(sinks.map((s) => s.close()));
});

describe('DLQ archive and secrets', () => {
  it('never writes credentials into an object (dead letters from a real dispatcher with a 401)', async () => {
    const p = await startPipeline({ S3_PREFIX: uniqueName('dlq-cred') });
    const s3 = createS3Client(p.config.s3);
    try {
      const apiKey = [...p.sandbox.state.tenants.values()].find((t) => t.spec.tenant === p.tenant)!.spec.credentials.apiKey!;
      p.sandbox.addFault({ kind: 'error', status: 401, platform: 'greenhouse', tenant: p.tenant, method: 'POST', path: '/v1/candidates', times: 3 });
      const dispatcher = createDeliveryConsumer({ config: p.config, logger: p.logger, role: { role: 'dispatcher' }, options: { groupId: uniqueName('dispatcher') } });
      await dispatcher.start();
      const events = [p.event(), p.event(), p.event()];
      for (const e of events) await p.publish(e);
      await waitFor('dead letters', async () => (await readTopic(p.kafka, p.config.topics.dlq)).length >= 3, 30_000);
      await dispatcher.close();

      const groupId = uniqueName('dlq-s3');
      const c = createDlqS3Sink({ config: p.config, logger: p.logger, options: { groupId, maxRecords: 100, maxAgeMs: 300 } });
      sinks.push(c);
      await c.start();
      await waitFor('archived', async () => (await readArchive(s3, p.config)).flatMap((o) => o.records).length >= 3, 30_000);
      const objects = await readArchive(s3, p.config);
      const text = objects.map((o) => gunzipSync(o.body).toString('utf8')).join('\n');
      expect(text).toContain(events[0]!.applicationId);
      expect(text).toContain('auth');
      expect(text).not.toContain(apiKey);
      expect(text).not.toContain(Buffer.from(apiKey).toString('base64'));
      expect(text).not.toContain(p.config.s3.secretAccessKey!);
      expect(text).not.toMatch(/"(apiKey|api_key|password|secret|token|credentials)"\s*:/i);
    } finally {
      s3.destroy();
      await p.close();
    }
  });

});
