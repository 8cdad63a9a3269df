/**
 * The whole pipeline, end to end, as a story a newcomer can watch:
 * stack → schema and topics → ATS sandbox with three customers → every consumer → a stream of
 * applications → live view → the alert digest → the S3 archive → fix the bad credentials →
 * redrive → the way back (a stage change in Acme's ATS becomes a status event) → summary. Everything runs as the real processes, on fresh demo topics and a demo
 * database, and is stopped at the end unless --keep.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { ListObjectsV2Command, GetObjectCommand } from '@aws-sdk/client-s3';
import pg from 'pg';
import { envFromConfig, loadConfig, type Config } from '../../lib/config.ts';
import { Keyring } from '../../registry/keyring.ts';
import { createPool } from '../../lib/db.ts';
import { createIntegrationRepository } from '../../registry/repository.ts';
import { createKafka, withAdmin } from '../../lib/kafka/index.ts';
import { createLogger } from '../../lib/logger.ts';
import { createS3Client } from '../../lib/s3.ts';
import { sleep } from '../../lib/sleep.ts';
import { ensureTopics, inboundTopicSpecs, topicSpecs } from '../../lib/topics.ts';
import { migrate } from '../../db/migrate.ts';
import { createApplicationPublisher } from '../../producers/publisher.ts';
import { sampleApplications } from '../sample-application.ts';
import { sandboxClient, waitForSandbox } from '../../sandbox/client.ts';
import { mailbox } from '../mail-catcher.ts';
import { spawnTs, type TsProcess } from '../spawn-entrypoint.ts';
import { freePort } from '../stack/processes.ts';
import { stackDown, stackUp } from '../stack/stack.ts';
import { createCustomers } from './customers.ts';
import { LiveView, type CustomerCounts } from './view.ts';
import { showWayBack } from './way-back.ts';

export interface DemoOptions {
  fast: boolean;
  keep: boolean;
  perCustomer: number;
  out: (line: string) => void;
}

const FAST_TIERS = 'retry-5s:5000,retry-10s:10000,retry-15s:15000';

async function until<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined | false | null>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`demo: timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface Child {
  name: string;
  proc: TsProcess;
  port: number;
}

export async function runDemo(base: Config, opts: DemoOptions): Promise<number> {
  const { out } = opts;
  const section = (title: string): void => out(`\n== ${title}`);
  const run = randomBytes(3).toString('hex');
  const children: Child[] = [];
  let startedServices: string[] = [];
  const cleanups: Array<() => Promise<unknown>> = [];

  try {
    section('1. Local stack');
    const up = await stackUp(base, (m) => out(`   ${m}`));
    startedServices = up.started;

    section('2. Database, schema and topics');
    const dbUrl = new URL(base.database.url);
    dbUrl.pathname = `${dbUrl.pathname.replace(/\/$/, '') || '/ats_relay'}_demo`;
    const admin = new URL(base.database.url);
    admin.pathname = '/postgres';
    const adminClient = new pg.Client({ connectionString: admin.toString() });
    await adminClient.connect();
    await adminClient.query(`DROP DATABASE IF EXISTS "${dbUrl.pathname.slice(1)}" WITH (FORCE)`);
    await adminClient.end();
    const migrated = await migrate(dbUrl.toString());
    out(`   database ${dbUrl.pathname.slice(1)} created, ${migrated.applied.length} migrations applied`);
    const keys = `demo:${randomBytes(32).toString('base64')}`;
    const sandboxPort = await freePort();
    const apiPort = await freePort();
    const config = loadConfig({
      ...envFromConfig(base),
      DATABASE_URL: dbUrl.toString(),
      ATS_RELAY_ENCRYPTION_KEYS: keys,
      TOPIC_APPLICATIONS: `ats-demo-${run}.applications`,
      TOPIC_PARTITIONS: '6',
      TOPIC_APPLICATION_STATUS: `ats-demo-${run}.application-status`,
      TOPIC_JOBS: `ats-demo-${run}.jobs`,
      WEBHOOK_PUBLIC_BASE_URL: `http://127.0.0.1:${apiPort}`,
      ...(opts.fast ? { RETRY_TIERS: FAST_TIERS, ALERT_WINDOW_MS: '8000', DLQ_ARCHIVE_MAX_AGE_MS: '3000' } : { ALERT_WINDOW_MS: '60000', DLQ_ARCHIVE_MAX_AGE_MS: '15000' }),
      ATS_ALLOW_PRIVATE_NETWORKS: 'true',
      ATS_RATE_LIMITS: 'greenhouse=none,lever=none,workable=none',
      CIRCUIT_FAILURE_THRESHOLD: '1000',
      LOG_LEVEL: 'warn',
      ATS_SANDBOX_PORT: String(sandboxPort),
    });
    const logger = createLogger({ level: 'warn', name: 'demo' });
    const kafka = createKafka(config.kafka, logger, { clientIdSuffix: 'demo' });
    const report = await withAdmin(kafka, (a) => ensureTopics(a, [...topicSpecs(config.topics), ...inboundTopicSpecs(config)]));
    for (const r of report) out(`   topic ${r.topic}: ${r.status}`);
    cleanups.push(() => withAdmin(kafka, (a) => a.deleteTopics(report.map((r) => r.topic))).catch(() => undefined));
    out(`   retry ladder: ${config.topics.retryTiers.map((t) => `${t.name} (${t.delayMs / 1000} s)`).join(' → ')} → DLQ`);

    section('3. ATS sandbox with three customers');
    const env = envFromConfig(config);
    const sandboxProc = spawnTs('sandbox/cli.ts', ['--port', String(sandboxPort)], env);
    children.push({ name: 'sandbox', proc: sandboxProc, port: sandboxPort });
    const sandboxUrl = `http://127.0.0.1:${sandboxPort}`;
    await waitForSandbox(sandboxUrl);
    const sandbox = sandboxClient(sandboxUrl);
    const pool = createPool(config.database, { max: 4 });
    cleanups.push(() => pool.end());
    const keyring = new Keyring(keys);
    const repo = createIntegrationRepository({ pool, keyring });
    const { customers, resume } = await createCustomers(sandbox, repo, run);
    for (const c of customers) out(`   ${c.name.padEnd(14)} ${c.platform.padEnd(10)} ${c.story}`);
    const initech = customers[2]!;
    const outage = await sandbox.addFault({ kind: 'error', status: 503, platform: 'lever', method: 'POST' });
    out(`   Globex's Lever answers 503 to every create until the demo clears it`);

    section('4. Consumers');
    const roles: Array<[string, string[]]> = [
      ['dispatcher', ['--role', 'dispatcher']],
      ...config.topics.retryTiers.map((t): [string, string[]] => [t.name, ['--role', 'retry', '--tier', t.name]]),
      ['dlq-s3', ['--role', 'dlq-s3']],
      ['alerts', ['--role', 'alerts']],
    ];
    // Groups of the demo's own: under the default names ('ats-relay.dispatcher', ...) a demo run on a
    // broker where the runbook's processes run would join their groups, and kafkajs' group leader
    // assigns its own topics' partitions to every member, so each side would be handed the other's.
    const groups = roles.map(([name]) => `ats-demo-${run}.${name}`);
    for (const [i, [name, args]] of roles.entries()) {
      const port = await freePort();
      children.push({ name, proc: spawnTs('consumers/cli.ts', [...args, '--group', groups[i]!], { ...env, HTTP_PORT: String(port) }), port });
    }
    cleanups.push(() => withAdmin(kafka, (a) => a.deleteGroups(groups)).catch(() => undefined));
    // The way back: the API receives the ATS's web hooks, a relay publishes the status events.
    children.push({ name: 'api', proc: spawnTs('api/cli.ts', ['--port', String(apiPort), '--host', '127.0.0.1'], env), port: apiPort });
    const relayPort = await freePort();
    children.push({ name: 'relay', proc: spawnTs('producers/outbox/cli.ts', ['--topics', config.inbound.statusTopic], { ...env, HTTP_PORT: String(relayPort) }), port: relayPort });
    await until('every consumer to join its group', 90_000, async () => {
      const states = await Promise.all(children.filter((c) => c.name !== 'sandbox').map((c) => fetch(`http://127.0.0.1:${c.port}/readyz`).then((r) => r.ok, () => false)));
      for (const c of children) if (c.proc.child.exitCode !== null) throw new Error(`demo: ${c.name} exited:\n${c.proc.output().slice(-2000)}`);
      return states.every(Boolean);
    });
    const shows: Record<string, string> = { api: ': web hooks, /console', relay: '/readyz: publishes the status events' };
    for (const c of children.filter((x) => x.name !== 'sandbox')) out(`   ${c.name.padEnd(11)} ready  (http://127.0.0.1:${c.port}${shows[c.name] ?? '/metrics'})`);
    out(`   consumer groups ${groups.join(', ')}`);

    section(`5. Publishing ${opts.perCustomer * customers.length} applications`);
    const publisher = createApplicationPublisher({ kafka: config.kafka, registryUrl: config.schemaRegistry.url, topic: config.topics.applications, pool, logger });
    await publisher.start();
    // The alert digest goes out at wall-clock multiples of its window, and Initech's dead letters
    // follow the publish within a second or two: published just before a window ends, they would be
    // told in two mails (seen in CI: 1 + 5). Start early in a window instead.
    const windowLeft = config.alerts.windowMs - (Date.now() % config.alerts.windowMs);
    if (windowLeft < Math.min(config.alerts.windowMs / 2, 10_000)) {
      out(`   waiting ${(windowLeft / 1000).toFixed(1)} s for the next alert window, so one digest tells the story`);
      await sleep(windowLeft + 100);
    }
    const startedAt = Date.now();
    for (let i = 0; i < opts.perCustomer; i++) {
      for (const c of customers) {
        const input = sampleApplications({ companyId: c.companyId, jobIds: c.jobIds, seed: i * 7 + c.companyId.length }).next();
        // One candidate per application, so the story's counts are per person.
        const email = input.candidate.email.replace('@', `+${run}-${i}@`);
        const result = await publisher.publishApplication({ ...input, applicationId: randomUUID(), candidate: { ...input.candidate, email }, resume, coverLetter: null });
        if (result.status !== 'published') throw new Error(`demo: publishing for ${c.name} gave ${result.status}`);
      }
    }
    await publisher.close();
    out(`   ${opts.perCustomer} per customer, published through the producer library (Avro, key = application id)`);

    section('6. Live view');
    const counts = async (): Promise<CustomerCounts[]> => {
      const { rows } = await pool.query<{ integration_id: string; status: string; n: number; retried: number }>(
        `SELECT integration_id, status, count(*)::int AS n, count(*) FILTER (WHERE try_count > 1)::int AS retried FROM deliveries GROUP BY 1, 2`,
      );
      return customers.map((c) => {
        const mine = rows.filter((r) => r.integration_id === c.integration.id);
        const get = (s: string): number => mine.find((r) => r.status === s)?.n ?? 0;
        return { name: c.name, platform: c.platform, published: opts.perCustomer, delivered: get('delivered'), retrying: get('retrying'), deadLettered: get('dead_lettered'), retried: mine.reduce((a, r) => a + r.retried, 0) };
      });
    };
    const tierLag = async (): Promise<Record<string, number>> =>
      withAdmin(kafka, async (a) => {
        const lags: Record<string, number> = {};
        for (const tier of config.topics.retryTiers) {
          const high = await a.fetchTopicOffsets(tier.topic);
          const committed = await a.fetchOffsets(`ats-relay.${tier.name}`, [tier.topic]);
          const done = new Map(committed[0]?.partitions.map((p) => [p.partition, Math.max(0, Number(p.offset))]) ?? []);
          lags[tier.name] = high.reduce((sum, p) => sum + Number(p.high) - (done.get(p.partition) ?? 0), 0);
        }
        const dlq = await a.fetchTopicOffsets(config.topics.dlq);
        lags.dlq = dlq.reduce((sum, p) => sum + Number(p.high), 0);
        return lags;
      });
    const view = new LiveView(out, process.stdout.isTTY === true);
    const clearAfterMs = opts.fast ? 7_000 : 45_000;
    let outageCleared = false;
    let frame: [CustomerCounts[], Record<string, number>] = [[], {}];
    await until('Acme and Globex delivered, Initech dead-lettered', opts.fast ? 120_000 : 900_000, async () => {
      if (!outageCleared && Date.now() - startedAt > clearAfterMs) {
        await sandbox.clearFaults(outage.id);
        outageCleared = true;
        view.note(`Globex's ATS is back (503s cleared after ${Math.round(clearAfterMs / 1000)} s)`);
      }
      const [c, lag] = await Promise.all([counts(), tierLag()]);
      frame = [c, lag];
      view.render(c, lag);
      const [a, g, i] = c as [CustomerCounts, CustomerCounts, CustomerCounts];
      return a.delivered === opts.perCustomer && g.delivered === opts.perCustomer && i.deadLettered === opts.perCustomer && lag.dlq! >= opts.perCustomer;
    });
    view.done(...frame);
    const afterFirstPass = await counts();

    section('7. The alert digest that was e-mailed');
    const inbox = mailbox(config.alerts.mailApiUrl);
    const mail = await until('the alert digest e-mail', opts.fast ? 60_000 : 180_000, async () =>
      (await inbox.list().catch(() => [])).filter((m) => m.text.includes(initech.companyId)).pop(),
    );
    out(`   Subject: ${mail.subject}`);
    for (const line of mail.text.split('\n').slice(0, 18)) out(`   | ${line}`);
    out(`   (all mails: ${config.alerts.mailApiUrl})`);

    section('8. The S3 archive of the DLQ');
    const s3 = createS3Client(config.s3);
    cleanups.push(async () => s3.destroy());
    const prefix = `${config.s3.prefix}/${config.topics.dlq}/`;
    const objects = await until('archive objects for every dead letter', opts.fast ? 60_000 : 180_000, async () => {
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: config.s3.bucket, Prefix: prefix }));
      let lines = 0;
      for (const o of listed.Contents ?? []) {
        const got = await s3.send(new GetObjectCommand({ Bucket: config.s3.bucket, Key: o.Key! }));
        lines += gunzipSync(Buffer.from(await got.Body!.transformToByteArray())).toString('utf8').trim().split('\n').filter(Boolean).length;
      }
      return lines >= opts.perCustomer ? { keys: (listed.Contents ?? []).map((o) => o.Key!), lines } : undefined;
    });
    for (const key of objects.keys) out(`   s3://${config.s3.bucket}/${key}`);
    out(`   ${objects.lines} dead letters archived (gzipped JSON lines, raw bytes kept for byte-exact redrive)`);

    section('9. Fix Initech\'s credentials and redrive its dead letters');
    const current = (await repo.getIntegration(initech.integration.id))!;
    await repo.updateIntegration(initech.integration.id, current.version, { credentials: initech.correctCredentials });
    out(`   credentials of ${initech.name}'s Workable integration updated (version ${current.version} → ${current.version + 1})`);
    const redrive = spawnTs('scripts/redrive/cli.ts', ['--company', initech.companyId, '--error-code', 'auth_failed', '--operator', 'demo'], env);
    const code = await redrive.exited;
    for (const line of redrive.output().trim().split('\n')) out(`   | ${line}`);
    if (code !== 0) throw new Error(`demo: redrive exited ${code}`);
    await until('Initech\'s redriven applications delivered', opts.fast ? 60_000 : 180_000, async () => {
      const c = await counts();
      const lag = await tierLag();
      frame = [c, lag];
      view.render(c, lag);
      return c[2]!.delivered === opts.perCustomer;
    });
    view.done(...frame);

    section('10. The way back: Acme moves a candidate to "interview"');
    await showWayBack({ config, pool, keyring, kafka, logger, sandbox, customer: customers[0]!, apiUrl: `http://127.0.0.1:${apiPort}`, timeoutMs: 60_000, out });

    section('11. Summary');
    const final = await counts();
    const rows = final.map((c, i) => {
      const first = afterFirstPass[i]!;
      return [c.name, c.platform, String(c.published), String(first.delivered), String(c.retried), String(first.deadLettered), String(c.delivered - first.delivered), String(c.delivered)];
    });
    const header = ['customer', 'ATS', 'published', 'delivered 1st pass', 'retried', 'dead-lettered', 'redriven + delivered', 'delivered in all'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    out([header, ...rows].map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ')).join('\n'));
    const atSandbox = await Promise.all(customers.map(async (c) => (await sandbox.records('applications', c.platform, c.platform === 'workable' ? `initech${run}` : `${c.companyId}`)).length));
    out(`\n   applications created in the sandbox ATSs: ${customers.map((c, i) => `${c.name} ${atSandbox[i]}`).join(', ')} (each exactly once)`);
    out(`   total time ${((Date.now() - startedAt) / 1000).toFixed(0)} s`);
    const allDelivered = final.every((c) => c.delivered === c.published);
    if (opts.keep) {
      // The web console (api/console/) on the demo's database and topics, with an operator token.
      const { token } = await repo.createApiToken({ name: `demo-${run} operator`, scope: { kind: 'admin' } });
      out(`\nConsole: http://127.0.0.1:${apiPort}/console  (sign in with the demo operator token ${token})`);
      out(`--keep: everything is still running (sandbox ${sandboxUrl}, topics and consumer groups ats-demo-${run}.*). Stop with Ctrl-C, then npm run stack -- down.`);
    }
    return allDelivered ? 0 : 1;
  } finally {
    if (!opts.keep) {
      for (const c of children.reverse()) {
        c.proc.child.kill('SIGTERM');
        await Promise.race([c.proc.exited, new Promise((r) => setTimeout(r, 20_000))]);
      }
      for (const fn of cleanups.reverse()) await fn().catch(() => undefined);
      if (startedServices.length) await stackDown(base, (m) => out(`   ${m}`), startedServices);
    }
  }
}
