/**
 * The services of the local stack: how each is installed (cached under STACK_HOME), started, and
 * proven ready by a real request. Versions are pinned here, in one place.
 */
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import path from 'node:path';
import { mkdir, writeFile } from 'node:fs/promises';
import pg from 'pg';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import type { Config } from '../../lib/config.ts';
import { createKafka } from '../../lib/kafka/index.ts';
import { createLogger } from '../../lib/logger.ts';
import { migrate } from '../../db/migrate.ts';
import type { ManagedProcess } from './processes.ts';
import { extract, fetchArtifact, fetchClasspath, findJava, findJava21, findMaven, StackError } from './toolchain.ts';

export const VERSIONS = {
  log4j2: '2.24.3',
  /** 3.1.7 (the last Java 17 build of 3.x) is not on Maven Central; 3.3.x needs Java 21+. */
  apicurio3: '3.3.3',
  /** Fallback when no Java 21+ exists: the 2.6 line runs on Java 17 and has the same ccompat v7 API. */
  apicurio2: '2.6.13.Final',
  s3mock: '4.12.4',
} as const;

/** Fixed so a re-format of an existing data dir is a no-op (same id Testcontainers uses). */
const KAFKA_CLUSTER_ID = '4L6g3nShT-eMCtK--X86sw';

export interface Paths {
  home: string;
  downloads: string;
  data: string;
  logs: string;
  run: string;
}

export function stackPaths(config: Config): Paths {
  const home = config.stack.home;
  return { home, downloads: path.join(home, 'downloads'), data: path.join(home, 'data'), logs: path.join(home, 'logs'), run: path.join(home, 'run') };
}

export interface Launch {
  command: string;
  args: string[];
  env?: Record<string, string>;
}

export interface Service {
  name: string;
  address: string;
  /** Ports that must be free before we start it. */
  ports: number[];
  process?: ManagedProcess;
  /** Download/unpack what is missing; print progress through `say`. */
  install?(say: (msg: string) => void): Promise<Launch>;
  /** A real request: resolves true when the service answers correctly. */
  probe(): Promise<boolean>;
  /** One-time setup once ready (bucket, database, migrations). */
  prepare?(): Promise<void>;
}

/** `marker` must appear in the process's command line, so a recycled pid is never mistaken for ours. */
function managed(paths: Paths, name: string, marker = paths.home): ManagedProcess {
  return { name, pidFile: path.join(paths.run, `${name}.pid`), logFile: path.join(paths.logs, `${name}.log`), marker };
}

export function portInUse(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    socket.setTimeout(1_000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

async function httpOk(url: string, timeoutMs = 2_000): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

/** The probe's client logs nothing: a refused connection is the answer "not running", not an error. */
let quiet: ReturnType<typeof createLogger> | undefined;
const quietLogger = (): ReturnType<typeof createLogger> => (quiet ??= createLogger({ level: 'silent' }));

/** The broker as a service; `paths` may name a home of its own (dev/stack/private-broker.ts). */
export function kafkaService(config: Config, paths: Paths): Service {
  const version = config.stack.kafkaVersion;
  const dir = path.join(paths.downloads, `kafka-${version}`);
  const dataDir = path.join(paths.data, 'kafka');
  const host = '127.0.0.1';
  const port = config.stack.kafkaPort;
  const controller = config.stack.kafkaControllerPort;
  return {
    name: 'kafka',
    address: `${host}:${port}`,
    ports: [port, controller],
    process: managed(paths, 'kafka'),
    async install(say) {
      const java = await findJava(undefined);
      await findMaven();
      const libs = path.join(dir, 'libs');
      say(`kafka: resolving kafka_2.13:${version} and log4j2 from Maven Central (cached in ${dir})`);
      // The broker jar's pom omits the logging backend (the release tarball adds it), so we name it.
      await fetchClasspath(
        `<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
  <groupId>ats-relay.stack</groupId><artifactId>kafka-runtime</artifactId><version>1</version><packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>${version}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>${VERSIONS.log4j2}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>${VERSIONS.log4j2}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId><version>${VERSIONS.log4j2}</version></dependency>
  </dependencies></project>`,
        libs,
        `Kafka ${version}`,
      );
      const props = path.join(paths.run, 'kafka-server.properties');
      const log4j = path.join(paths.run, 'kafka-log4j2.properties');
      await mkdir(paths.run, { recursive: true });
      await writeFile(
        props,
        [
          'process.roles=broker,controller',
          'node.id=1',
          `controller.quorum.voters=1@${host}:${controller}`,
          `listeners=PLAINTEXT://${host}:${port},CONTROLLER://${host}:${controller}`,
          `advertised.listeners=PLAINTEXT://${host}:${port}`,
          'inter.broker.listener.name=PLAINTEXT',
          'controller.listener.names=CONTROLLER',
          'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
          `log.dirs=${dataDir}`,
          'num.partitions=1',
          // Topics are created explicitly (npm run topics -- ensure); a typo must not create one.
          'auto.create.topics.enable=false',
          'offsets.topic.replication.factor=1',
          'offsets.topic.num.partitions=3',
          'transaction.state.log.replication.factor=1',
          'transaction.state.log.min.isr=1',
          'share.coordinator.state.topic.replication.factor=1',
          'share.coordinator.state.topic.min.isr=1',
          'group.initial.rebalance.delay.ms=0',
          'log.retention.check.interval.ms=60000',
          '',
        ].join('\n'),
      );
      await writeFile(
        log4j,
        [
          'status = warn',
          'appender.console.type = Console',
          'appender.console.name = STDOUT',
          'appender.console.layout.type = PatternLayout',
          'appender.console.layout.pattern = [%d] %p %m (%c)%n',
          'rootLogger.level = WARN',
          'rootLogger.appenderRef.stdout.ref = STDOUT',
          'logger.kafka.name = kafka',
          'logger.kafka.level = INFO',
          '',
        ].join('\n'),
      );
      const jvm = [
        `-Xms${Math.min(256, config.stack.kafkaHeapMb)}m`,
        `-Xmx${config.stack.kafkaHeapMb}m`,
        '-XX:+UseG1GC',
        '-XX:MaxGCPauseMillis=20',
        '-Djava.awt.headless=true',
        `-Dlog4j2.configurationFile=${log4j}`,
        `-Dkafka.logs.dir=${paths.logs}`,
        '-cp',
        `${libs}/*`,
      ];
      // Formatting is idempotent with --ignore-formatted; run it before every start.
      const { execFile } = await import('node:child_process');
      await new Promise<void>((resolve, reject) =>
        execFile(java.bin, [...jvm, 'kafka.tools.StorageTool', 'format', '-t', KAFKA_CLUSTER_ID, '-c', props, '--ignore-formatted'], (err, _o, stderr) =>
          err ? reject(new StackError(`kafka: formatting ${dataDir} failed: ${stderr.split('\n').slice(-5).join('\n')}`)) : resolve(),
        ),
      );
      return { command: java.bin, args: [...jvm, 'kafka.Kafka', props] };
    },
    async probe() {
      if (!(await portInUse(port))) return false;
      const kafka = createKafka({ ...config.kafka, clientId: 'ats-relay-stack' }, quietLogger(), { retry: { retries: 0 }, connectionTimeoutMs: 2_000 });
      const admin = kafka.admin();
      try {
        await admin.connect();
        return (await admin.brokerCount()) > 0;
      } catch {
        return false;
      } finally {
        await admin.disconnect().catch(() => undefined);
      }
    },
  };
}

function registryService(config: Config, paths: Paths): Service {
  const port = config.stack.registryPort;
  return {
    name: 'registry',
    address: config.schemaRegistry.url,
    ports: [port],
    process: managed(paths, 'registry'),
    async install(say) {
      const java17 = await findJava(undefined);
      const line = config.stack.registryLine;
      const java21 = line === '2' ? undefined : await findJava21(config.stack.java21Home, java17);
      if (line === '3' && !java21) throw new StackError('STACK_REGISTRY_LINE=3 needs a Java 21+ (set STACK_JAVA21_HOME), or use 2 / auto.');
      await findMaven();
      const heap = [`-Xms128m`, `-Xmx${config.stack.registryHeapMb}m`];
      const common = ['-Dquarkus.http.host=127.0.0.1', `-Dquarkus.http.port=${port}`, '-Djava.util.logging.manager=org.jboss.logmanager.LogManager'];
      if (java21) {
        const v = VERSIONS.apicurio3;
        say(`registry: Apicurio Registry ${v} on Java ${java21.major} (Maven Central, cached)`);
        const archive = await fetchArtifact(`io.apicurio:apicurio-registry-app:${v}:tar.gz:all`, path.join(paths.downloads, 'apicurio'), `apicurio-registry-app-${v}-all.tar.gz`);
        const into = path.join(paths.downloads, `apicurio-${v}`);
        await extract(archive, into);
        return {
          command: java21.bin,
          args: [
            ...heap,
            ...common,
            // The management interface would take port 9000; health is served on the main port anyway.
            '-Dquarkus.management.enabled=false',
            // …but this build starts it all the same: give it a port derived from ours, so a second
            // stack (or anything on 9000) does not make the registry exit at start.
            `-Dquarkus.management.port=${port + 1000}`,
            '-Dapicurio.rules.global.compatibility=BACKWARD',
            '-jar',
            path.join(into, 'quarkus-run.jar'),
          ],
        };
      }
      const v = VERSIONS.apicurio2;
      say(`registry: ${line === '2' ? 'STACK_REGISTRY_LINE=2' : 'no Java 21+ found'}; Apicurio Registry ${v} on Java ${java17.major} (Maven Central, cached)`);
      const archive = await fetchArtifact(`io.apicurio:apicurio-registry-app:${v}:zip:all`, path.join(paths.downloads, 'apicurio'), `apicurio-registry-app-${v}-all.zip`);
      const into = path.join(paths.downloads, `apicurio-${v}`);
      await extract(archive, into);
      return {
        command: java17.bin,
        args: [...heap, ...common, '-Dregistry.rules.global.compatibility=BACKWARD', '-jar', path.join(into, `apicurio-registry-app-${v}-runner.jar`)],
      };
    },
    probe: () => httpOk(`${config.schemaRegistry.url}/subjects`),
  };
}

function s3Service(config: Config, paths: Paths): Service {
  const port = config.stack.s3Port;
  const client = (): S3Client =>
    new S3Client({
      endpoint: config.s3.endpoint,
      region: config.s3.region,
      forcePathStyle: config.s3.forcePathStyle,
      credentials: { accessKeyId: config.s3.accessKeyId ?? 'local', secretAccessKey: config.s3.secretAccessKey ?? 'local' },
    });
  return {
    name: 's3',
    address: config.s3.endpoint ?? '(AWS)',
    ports: [port],
    process: managed(paths, 's3'),
    async install(say) {
      const java = await findJava(undefined);
      await findMaven();
      say(`s3: Adobe S3Mock ${VERSIONS.s3mock} (Maven Central, cached)`);
      const jar = await fetchArtifact(`com.adobe.testing:s3mock:${VERSIONS.s3mock}:jar:exec`, path.join(paths.downloads, 's3mock'), `s3mock-${VERSIONS.s3mock}-exec.jar`);
      const root = path.join(paths.data, 's3');
      await mkdir(root, { recursive: true });
      return {
        command: java.bin,
        // HTTPS is unused; move it next to the HTTP port so it does not collide with anything common.
        // S3Mock 4 reads its HTTP port from com.adobe.testing.s3mock.httpPort (`--http.port` is ignored).
        args: [`-Xmx${config.stack.s3HeapMb}m`, '-jar', jar, `--com.adobe.testing.s3mock.httpPort=${port}`, `--server.port=${port + 101}`, '--server.address=127.0.0.1'],
        env: {
          COM_ADOBE_TESTING_S3MOCK_STORE_INITIAL_BUCKETS: config.s3.bucket,
          COM_ADOBE_TESTING_S3MOCK_STORE_ROOT: root,
          COM_ADOBE_TESTING_S3MOCK_STORE_RETAIN_FILES_ON_EXIT: 'true',
          COM_ADOBE_TESTING_S3MOCK_STORE_REGION: config.s3.region,
        },
      };
    },
    probe: () => httpOk(`${config.s3.endpoint}/`),
    async prepare() {
      const s3 = client();
      try {
        await s3.send(new CreateBucketCommand({ Bucket: config.s3.bucket }));
      } catch (err) {
        const name = (err as { name?: string }).name;
        if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw err;
      } finally {
        s3.destroy();
      }
    },
  };
}

function mailService(config: Config, paths: Paths): Service {
  // maildev's exports hide its CLI file, so find it in the project's own node_modules.
  const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../node_modules/maildev/dist/bin/maildev.js');
  return {
    name: 'smtp',
    address: `smtp://127.0.0.1:${config.stack.smtpPort} (web ${config.alerts.mailApiUrl})`,
    ports: [config.stack.smtpPort, config.stack.mailWebPort],
    process: managed(paths, 'smtp', bin),
    async install() {
      return {
        command: process.execPath,
        args: [bin, '--smtp', String(config.stack.smtpPort), '--web', String(config.stack.mailWebPort), '--ip', '127.0.0.1', '--web-ip', '127.0.0.1'],
      };
    },
    async probe() {
      return (await portInUse(config.stack.smtpPort)) && (await httpOk(`${config.alerts.mailApiUrl}/api/healthz`));
    },
  };
}

function postgresService(config: Config): Service {
  const url = new URL(config.database.url);
  return {
    name: 'postgres',
    address: `${url.hostname}:${url.port || 5432}${url.pathname}`,
    ports: [],
    async probe() {
      const admin = new URL(config.database.url);
      admin.pathname = '/postgres';
      const client = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: 2_000 });
      try {
        await client.connect();
        await client.query('SELECT 1');
        return true;
      } catch {
        return false;
      } finally {
        await client.end().catch(() => undefined);
      }
    },
    async prepare() {
      await migrate(config.database.url);
    },
  };
}

export function stackServices(config: Config): Service[] {
  const paths = stackPaths(config);
  return [postgresService(config), kafkaService(config, paths), registryService(config, paths), s3Service(config, paths), mailService(config, paths)];
}
