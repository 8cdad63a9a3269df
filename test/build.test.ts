/**
 * The production build: `npm run build` emits JavaScript that plain `node` runs — the `ats-relay`
 * bin and the image's commands — with the files read at run time beside it, and no TypeScript
 * loader anywhere in the process.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envFromConfig, type Config } from '../lib/config.ts';
import { createKafka, withAdmin } from '../lib/kafka/index.ts';
import { createLogger } from '../lib/logger.ts';
import { childEnv } from '../dev/process-env.ts';
import { BUILT_ENTRYPOINTS, RUNTIME_ASSETS, build } from '../dev/build.ts';
import { testConfig, uniqueName } from './support/config.ts';
import { deleteTestTopics } from './support/pipeline-base.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = path.join(root, 'dist');

function jsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.js'))
    .map((e) => path.join(e.parentPath, e.name));
}

/** Plain node, no loader flags inherited from the test runner's environment. */
function runBuilt(args: string[], env: Record<string, string>): ChildProcess {
  const { NODE_OPTIONS: _ignored, ...clean } = childEnv(env);
  return spawn(process.execPath, args, { cwd: root, env: clean, stdio: ['ignore', 'pipe', 'pipe'] });
}

function collect(child: ChildProcess): { output: () => string; exited: Promise<number | string> } {
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return { output: () => out, exited };
}

/** What a process has loaded or was started with that would mean TypeScript runs through a loader. */
function loaderTraces(pid: number): string[] {
  const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter((kv) => kv.startsWith('NODE_OPTIONS='));
  return [...cmdline, ...environ].filter((s) => /tsx|--import|--loader|--experimental-strip-types|\.ts$/.test(s));
}

beforeAll(() => build(), 180_000);

describe('npm run build', () => {
  it('emits every entrypoint the image runs, with no .ts specifier or tsx import left', () => {
    for (const [script, file] of Object.entries(BUILT_ENTRYPOINTS)) expect(existsSync(path.join(root, file)), `${script} → ${file}`).toBe(true);
    for (const file of jsFiles(dist)) {
      const js = readFileSync(file, 'utf8');
      expect(js, file).not.toMatch(/from\s+['"]\.{1,2}\/[^'"]*\.ts['"]|import\(\s*['"]\.{1,2}\/[^'"]*\.ts['"]/);
      expect(js, file).not.toMatch(/['"]tsx(\/[^'"]*)?['"]/);
    }
  });

  it('puts every file the code reads relative to its own module beside the built module', () => {
    for (const dir of RUNTIME_ASSETS) expect(readdirSync(path.join(dist, dir)).length, dir).toBeGreaterThan(0);
    // `new URL('<relative>', import.meta.url)` in the built code must resolve inside dist/.
    for (const file of jsFiles(dist)) {
      for (const m of readFileSync(file, 'utf8').matchAll(/new URL\(\s*'(\.{1,2}\/[^']+)',\s*import\.meta\.url\s*\)/g)) {
        const target = path.resolve(path.dirname(file), m[1]!);
        expect(existsSync(target), `${path.relative(root, file)} reads ${m[1]}`).toBe(true);
      }
    }
  });

  it('runs `ats-relay consume --help` with plain node', async () => {
    const p = collect(runBuilt(['bin/ats-relay.mjs', 'consume', '--help'], {}));
    expect(await p.exited).toBe(0);
    expect(p.output()).toContain('Usage: ats-relay consume --role <role>');
  });
});

describe('the built processes against the real stack', () => {
  let config: Config;
  let env: Record<string, string>;
  const children: ChildProcess[] = [];

  beforeAll(() => {
    // Every topic `topics ensure` creates is the test's own: with the default inbound names it made
    // ats.application-status and ats.jobs with one partition on the developer's broker, and the next
    // `npm run topics -- ensure` reported them as drift it cannot repair.
    config = testConfig({
      TOPIC_APPLICATIONS: uniqueName('built'),
      TOPIC_APPLICATION_STATUS: uniqueName('built-status'),
      TOPIC_JOBS: uniqueName('built-jobs'),
      TOPIC_PARTITIONS: '1',
      RETRY_TIERS: 'retry-1s:1000',
    });
    env = { ...envFromConfig(config), HTTP_PORT: '0', LOG_LEVEL: 'info' };
  });

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    const kafka = createKafka(config.kafka, createLogger({ level: 'warn', name: 'test' }), { clientIdSuffix: 'test' });
    await deleteTestTopics(kafka, config);
    await withAdmin(kafka, (admin) => admin.deleteTopics([config.inbound.statusTopic, config.inbound.jobsTopic])).catch(() => undefined);
  });

  it('migrates the database and creates the topics (the Jobs of deploy/k8s)', async () => {
    const migrate = collect(runBuilt([BUILT_ENTRYPOINTS['db:migrate']], env));
    expect(await migrate.exited, migrate.output()).toBe(0);
    const topics = collect(runBuilt([BUILT_ENTRYPOINTS.topics, 'ensure'], env));
    expect(await topics.exited, topics.output()).toBe(0);
    expect(topics.output()).toContain(config.topics.applications);
    expect(topics.output()).toContain(config.inbound.statusTopic);
  });

  it('starts the dispatcher from the bin, ready on /readyz, with no TypeScript loader, and stops on SIGTERM', async () => {
    const child = runBuilt(['bin/ats-relay.mjs', 'consume', '--role', 'dispatcher', '--group', uniqueName('built')], env);
    children.push(child);
    const p = collect(child);
    let port: number | undefined;
    const deadline = Date.now() + 60_000;
    while (!port) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no health port: ${p.output()}`);
      const m = /"port":(\d+)[^\n]*health and metrics listening/.exec(p.output());
      port = m ? Number(m[1]) : undefined;
      await new Promise((r) => setTimeout(r, 100));
    }
    for (;;) {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
      if (res?.status === 200) break;
      if (Date.now() > deadline) throw new Error(`not ready: ${p.output()}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(loaderTraces(child.pid!)).toEqual([]);
    expect(readFileSync(`/proc/${child.pid!}/cmdline`, 'utf8').split('\0').slice(0, 2)).toEqual([process.execPath, 'bin/ats-relay.mjs']);
    child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
  });
});

describe('the bin in development', () => {
  it('imports the built consumer CLI (never tsx) and rejects an unknown command with exit 2', () => {
    const bin = readFileSync(path.join(root, 'bin/ats-relay.mjs'), 'utf8');
    expect(bin).not.toMatch(/import[^;]*['"]tsx/);
    expect(bin).toContain(`'../${BUILT_ENTRYPOINTS.consume}'`);
    expect(spawnSync(process.execPath, ['bin/ats-relay.mjs', 'nope'], { cwd: root }).status).toBe(2);
  });
});
