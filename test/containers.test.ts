/**
 * The testcontainers stack (TEST_STACK=containers) and docker-compose.yml describe the same
 * infrastructure twice; this keeps them from drifting: same services, images, published ports,
 * environment and health checks, and the host-side settings point at what the containers publish.
 * (Runs without Docker: it compares definitions. Starting them needs a Docker engine.)
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../lib/config.ts';
import { CONTAINER_STACK_ENV, STACK_CONTAINERS } from './support/containers.ts';

interface ComposeService {
  image?: string;
  build?: unknown;
  ports?: string[];
  environment?: Record<string, string | number>;
  healthcheck?: { test: string[] };
}
const compose = parse(readFileSync(new URL('../docker-compose.yml', import.meta.url), 'utf8'), { merge: true }) as {
  services: Record<string, ComposeService>;
};
/** Compose services that tests do not need: the topic browser. */
const NOT_FOR_TESTS = new Set(['kafka-ui']);
const stringify = (env: Record<string, string | number> = {}): Record<string, string> => Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));

describe('testcontainers stack vs docker-compose.yml', () => {
  it('runs every infrastructure service of docker-compose.yml (but Kafka UI), and nothing else', () => {
    const infra = Object.entries(compose.services).filter(([name, s]) => s.image && !s.build && !NOT_FOR_TESTS.has(name)).map(([name]) => name);
    expect(STACK_CONTAINERS.map((c) => c.service).sort()).toEqual(infra.sort());
  });

  for (const def of STACK_CONTAINERS) {
    it(`${def.service}: same image, ports, environment and health check`, () => {
      const svc = compose.services[def.service]!;
      expect(def.image).toBe(svc.image);
      expect(def.ports).toEqual(svc.ports);
      expect(def.environment).toEqual(stringify(svc.environment));
      if (svc.healthcheck) {
        expect(def.ready).toBe('healthcheck');
        expect(def.healthcheck).toEqual(svc.healthcheck.test);
      } else expect(def.ready).toBe('ports');
    });
  }

  it('points the tests at ports the containers publish, for the services the compose apps use', () => {
    const appEnv = stringify(Object.values(compose.services).find((s) => s.build)!.environment);
    const published = new Map(STACK_CONTAINERS.flatMap((c) => c.ports.map((p) => [Number(p.split(':')[0]), c.service] as const)));
    const config = loadConfig({ ...CONTAINER_STACK_ENV });
    const hostSide: Record<string, string> = {
      KAFKA_BROKERS: `tcp://${config.kafka.brokers[0]!}`,
      SCHEMA_REGISTRY_URL: config.schemaRegistry.url,
      DATABASE_URL: config.database.url,
      S3_ENDPOINT: config.s3.endpoint!,
      SMTP_URL: config.alerts.smtpUrl,
      MAIL_API_URL: config.alerts.mailApiUrl,
    };
    for (const [name, url] of Object.entries(hostSide)) {
      const host = new URL(url);
      const inCompose = new URL(appEnv[name]!.includes('://') ? appEnv[name]! : `tcp://${appEnv[name]!}`);
      expect(host.hostname, name).toBe('127.0.0.1');
      // The same service the compose apps reach (by its service name on the compose network).
      expect(published.get(Number(host.port)), `${name}: ${url}`).toBe(inCompose.hostname);
      // The tests' database is their own (ats_relay_test), on the same server.
      if (name !== 'DATABASE_URL') expect(host.pathname.replace(/\/$/, ''), `${name}: same path as in docker-compose.yml`).toBe(inCompose.pathname.replace(/\/$/, ''));
    }
  });
});
