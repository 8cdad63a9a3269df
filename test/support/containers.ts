/**
 * The Docker path to the test stack (`TEST_STACK=containers`): testcontainers runs the images of
 * docker-compose.yml, with the same environment and published ports, on a network where each
 * container answers to its compose service name (the Kafka and registry settings name `kafka`).
 * test/containers.test.ts keeps these definitions and docker-compose.yml from drifting.
 *
 * Needs a Docker engine; the default (`local`) is the no-Docker stack of `npm run stack`, and that
 * is what CI proves. Ports are the compose ones, so a machine runs one or the other.
 */
import { GenericContainer, Network, Wait, type StartedNetwork, type StartedTestContainer } from 'testcontainers';

export interface ContainerDefinition {
  /** The docker-compose.yml service this container is. */
  service: string;
  image: string;
  /** "host:container", as docker-compose.yml writes them. */
  ports: string[];
  environment: Record<string, string>;
  /** What "ready" means; docker-compose.yml's healthcheck where it has one. */
  ready: 'healthcheck' | 'ports';
  healthcheck?: ['CMD', ...string[]];
}

export const STACK_CONTAINERS: readonly ContainerDefinition[] = [
  {
    service: 'kafka',
    image: 'confluentinc/cp-kafka:8.0.0',
    ports: ['9092:9092'],
    environment: {
      CLUSTER_ID: '4L6g3nShT-eMCtK--X86sw',
      KAFKA_NODE_ID: '1',
      KAFKA_PROCESS_ROLES: 'broker,controller',
      KAFKA_CONTROLLER_QUORUM_VOTERS: '1@kafka:29093',
      KAFKA_CONTROLLER_LISTENER_NAMES: 'CONTROLLER',
      KAFKA_LISTENERS: 'PLAINTEXT://kafka:29092,CONTROLLER://kafka:29093,PLAINTEXT_HOST://0.0.0.0:9092',
      KAFKA_ADVERTISED_LISTENERS: 'PLAINTEXT://kafka:29092,PLAINTEXT_HOST://localhost:9092',
      KAFKA_LISTENER_SECURITY_PROTOCOL_MAP: 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT',
      KAFKA_INTER_BROKER_LISTENER_NAME: 'PLAINTEXT',
      KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: '1',
      KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: '1',
      KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: '1',
      KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
      KAFKA_AUTO_CREATE_TOPICS_ENABLE: 'false',
      KAFKA_LOG_DIRS: '/var/lib/kafka/data',
    },
    ready: 'healthcheck',
    healthcheck: ['CMD', 'kafka-broker-api-versions', '--bootstrap-server', 'localhost:9092'],
  },
  {
    service: 'schema-registry',
    image: 'confluentinc/cp-schema-registry:8.0.0',
    ports: ['8081:8081'],
    environment: {
      SCHEMA_REGISTRY_HOST_NAME: 'schema-registry',
      SCHEMA_REGISTRY_LISTENERS: 'http://0.0.0.0:8081',
      SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS: 'PLAINTEXT://kafka:29092',
      SCHEMA_REGISTRY_SCHEMA_COMPATIBILITY_LEVEL: 'backward',
    },
    ready: 'ports',
  },
  {
    service: 'postgres',
    image: 'postgres:16-alpine',
    ports: ['5432:5432'],
    environment: { POSTGRES_PASSWORD: 'postgres', POSTGRES_DB: 'ats_relay' },
    ready: 'healthcheck',
    healthcheck: ['CMD', 'pg_isready', '-U', 'postgres'],
  },
  {
    service: 's3',
    image: 'adobe/s3mock:4.12.4',
    ports: ['9090:9090'],
    environment: { COM_ADOBE_TESTING_S3MOCK_STORE_INITIAL_BUCKETS: 'ats-relay-dlq' },
    ready: 'ports',
  },
  {
    service: 'mailpit',
    image: 'axllent/mailpit:v1.27',
    ports: ['1025:1025', '8025:8025'],
    environment: { MP_SMTP_AUTH_ACCEPT_ANY: '1', MP_SMTP_AUTH_ALLOW_INSECURE: '1' },
    ready: 'ports',
  },
];

/**
 * What the tests' processes need to reach those containers from the host (defaults in
 * lib/config.ts name the local stack's ports and paths). The Kafka and S3 defaults already match.
 */
export const CONTAINER_STACK_ENV: Readonly<Record<string, string>> = {
  SCHEMA_REGISTRY_URL: 'http://127.0.0.1:8081',
  DATABASE_URL: 'postgres://postgres:postgres@127.0.0.1:5432/ats_relay_test',
  SMTP_URL: 'smtp://127.0.0.1:1025',
  MAIL_API_URL: 'http://127.0.0.1:8025',
};

export interface StartedContainerStack {
  stop(): Promise<void>;
}

export async function startContainerStack(say: (msg: string) => void): Promise<StartedContainerStack> {
  const network: StartedNetwork = await new Network().start();
  const started: StartedTestContainer[] = [];
  const stop = async (): Promise<void> => {
    for (const c of started.reverse()) await c.stop().catch(() => undefined);
    await network.stop().catch(() => undefined);
  };
  try {
    // In order: the registry needs Kafka up (compose's depends_on service_healthy).
    for (const def of STACK_CONTAINERS) {
      let c = new GenericContainer(def.image)
        .withNetwork(network)
        .withNetworkAliases(def.service)
        .withEnvironment(def.environment)
        .withExposedPorts(...def.ports.map((p) => ({ host: Number(p.split(':')[0]), container: Number(p.split(':')[1]) })))
        .withStartupTimeout(180_000);
      if (def.service === 'kafka') c = c.withHostname('kafka');
      if (def.ready === 'healthcheck') c = c.withHealthCheck({ test: def.healthcheck!, interval: 3_000, retries: 40 }).withWaitStrategy(Wait.forHealthCheck());
      else c = c.withWaitStrategy(Wait.forListeningPorts());
      const t0 = Date.now();
      started.push(await c.start());
      say(`${def.service}: container ${def.image} ready (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { stop };
}
