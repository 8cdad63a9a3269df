/**
 * One test per real service, proving the stack is the real thing: a message through Kafka, a
 * schema through the registry, an object through S3, a mail through SMTP, a query through pg.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import nodemailer from 'nodemailer';
import pg from 'pg';
import { stackUp } from '../dev/stack/stack.ts';
import { createKafka } from '../lib/kafka/index.ts';
import { createLogger } from '../lib/logger.ts';
import { sleep } from '../lib/sleep.ts';
import { waitForLeaders } from '../lib/topics.ts';
import { testConfig, uniqueName } from './support/config.ts';
import { waitFor } from './support/wait.ts';

const config = testConfig();

describe('the local stack is real', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  it('produces and consumes through Kafka', async () => {
    const kafka = createKafka({ ...config.kafka, clientId: uniqueName('stack-test') }, createLogger({ level: 'silent' }));
    const topic = uniqueName('stack-test');
    const admin = kafka.admin();
    await admin.connect();
    cleanups.push(() => admin.disconnect());
    await admin.createTopics([{ topic, partitions: 2, replicationFactor: 1 }]);
    await waitForLeaders(admin, [topic]);
    cleanups.push(() => admin.deleteTopics([topic]));

    const producer = kafka.producer({ idempotent: true });
    await producer.connect();
    cleanups.push(() => producer.disconnect());
    const value = randomUUID();
    await producer.send({ topic, acks: -1, messages: [{ key: 'k1', value, headers: { 'x-test': 'yes' } }] });

    const consumer = kafka.consumer({ groupId: uniqueName('stack-test') });
    cleanups.push(() => consumer.disconnect());
    const received = await new Promise<{ key: string; value: string; header: string }>((resolve, reject) => {
      consumer
        .run({
          topics: [topic],
          onBatch: async ({ records }) => {
            const [first] = records;
            if (first) resolve({ key: String(first.key), value: String(first.value), header: String(first.headers['x-test']) });
          },
        })
        .catch(reject);
    });
    expect(received).toEqual({ key: 'k1', value, header: 'yes' });
  });

  it('registers and fetches an Avro schema through the registry', async () => {
    const registry = new SchemaRegistry({ host: config.schemaRegistry.url });
    const subject = `${uniqueName('stack-test')}-value`;
    const schema = { type: 'record', name: 'Probe', namespace: 'test.stack', fields: [{ name: 'id', type: 'string' }] };
    const { id } = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(schema) }, { subject });
    expect(await registry.getLatestSchemaId(subject)).toBe(id);
    // Fetched by id over plain HTTP, as any other Confluent-compatible client would.
    const res = await fetch(`${config.schemaRegistry.url}/schemas/ids/${id}`);
    expect(res.status).toBe(200);
    const fetched = JSON.parse(((await res.json()) as { schema: string }).schema) as { name: string; namespace: string };
    // Avro full name: the registry may return it folded into `name` (canonical form) or split.
    const fullName = fetched.name.includes('.') ? fetched.name : `${fetched.namespace}.${fetched.name}`;
    expect(fullName).toBe('test.stack.Probe');
    const bytes = await registry.encode(id, { id: 'abc' });
    expect(bytes[0]).toBe(0); // Confluent wire format: magic byte, then the schema id
    expect(bytes.readInt32BE(1)).toBe(id);
    expect(await registry.decode(bytes)).toEqual({ id: 'abc' });
  });

  it('puts and gets an object through S3 with the SDK default checksums', async () => {
    const s3 = new S3Client({
      endpoint: config.s3.endpoint,
      region: config.s3.region,
      forcePathStyle: config.s3.forcePathStyle,
      credentials: { accessKeyId: config.s3.accessKeyId!, secretAccessKey: config.s3.secretAccessKey! },
    });
    cleanups.push(async () => s3.destroy());
    const key = `stack-test/${randomUUID()}.txt`;
    const body = `hello ${randomUUID()}`;
    await s3.send(new PutObjectCommand({ Bucket: config.s3.bucket, Key: key, Body: body }));
    const got = await s3.send(new GetObjectCommand({ Bucket: config.s3.bucket, Key: key }));
    expect(await got.Body!.transformToString()).toBe(body);
  });

  it('sends a mail over SMTP and reads it back from the mail server', async () => {
    const transport = nodemailer.createTransport(config.alerts.smtpUrl);
    const subject = `stack test ${randomUUID()}`;
    await transport.sendMail({ from: config.alerts.from, to: 'ops@localhost', subject, text: 'it works' });
    transport.close();
    const res = await fetch(`${config.alerts.mailApiUrl}/api/email`);
    const mails = (await res.json()) as Array<{ subject: string; text?: string }>;
    const mail = mails.find((m) => m.subject === subject);
    expect(mail?.text?.trim()).toBe('it works');
  });

  it('queries PostgreSQL and finds the migrated schema', async () => {
    const client = new pg.Client({ connectionString: config.database.url });
    await client.connect();
    cleanups.push(() => client.end());
    const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM schema_migrations');
    expect(rows[0]!.n).toBeGreaterThanOrEqual(0);
    const { rows: now } = await client.query<{ db: string }>('SELECT current_database() AS db');
    expect(now[0]!.db).toBe(new URL(config.database.url).pathname.slice(1));
  });
});

describe('`npm run stack -- up` twice at once', () => {
  // Both would install and format the same data directories; the second waits for the first to have
  // started everything, then finds the services running. Run on the running stack, with a private home.
  it('waits for an `up` that is starting services, and takes over a lock its dead owner left', async () => {
    const home = await mkdtemp(path.join(os.tmpdir(), 'stack-home-'));
    const mine = { ...config, stack: { ...config.stack, home } };
    const owner = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
    try {
      await writeFile(path.join(home, 'stack-up.lock'), String(owner.pid));
      const said: string[] = [];
      const up = stackUp(mine, (m) => said.push(m));
      await waitFor('the second up waiting', () => said.some((m) => m.includes(`another \`up\` (pid ${owner.pid})`)), 10_000);
      let done = false;
      void up.then(() => (done = true));
      await sleep(1_000);
      expect(done).toBe(false);
      owner.kill('SIGKILL');
      const { states } = await up;
      expect(states.filter((s) => s.state !== 'ready')).toEqual([]);
      expect(existsSync(path.join(home, 'stack-up.lock'))).toBe(false);
    } finally {
      owner.kill('SIGKILL');
      await rm(home, { recursive: true, force: true });
    }
  });
});
