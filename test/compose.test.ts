/**
 * docker-compose.yml is the Docker path to the same system: it must name the same services as
 * the local stack and only environment variables the config module knows.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CONFIG_VARS, loadConfig } from '../lib/config.ts';
import { deployedNodeOptions, splitFlags } from '../dev/node-options.ts';

interface ComposeService {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
}
const compose = parse(readFileSync(new URL('../docker-compose.yml', import.meta.url), 'utf8'), { merge: true }) as {
  services: Record<string, ComposeService>;
};
const known = new Set(CONFIG_VARS.map((v) => v.env));

describe('docker-compose.yml', () => {
  it('runs the infrastructure the local stack runs, plus Kafka UI wired to the broker and the registry', () => {
    for (const name of ['kafka', 'schema-registry', 'postgres', 's3', 'mailpit', 'kafka-ui']) expect(compose.services[name], name).toBeDefined();
    const ui = compose.services['kafka-ui']!.environment!;
    expect(ui.KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS).toBe('kafka:29092');
    expect(ui.KAFKA_CLUSTERS_0_SCHEMAREGISTRY).toBe('http://schema-registry:8081');
    for (const [name, svc] of Object.entries(compose.services)) {
      if (svc.image) expect(svc.image, `${name} pins its image`).toMatch(/:[\w.-]+$/);
      if (svc.image) expect(svc.image, `${name} pins its image`).not.toMatch(/:latest$/);
    }
  });

  it('gives ats-relay processes only variables lib/config.ts declares, with values it accepts', () => {
    const apps = Object.entries(compose.services).filter(([, s]) => s.build);
    expect(apps.length).toBeGreaterThan(0);
    for (const [name, svc] of apps) {
      const env = { ...svc.environment, ATS_RELAY_ENCRYPTION_KEYS: 'k1:' + Buffer.alloc(32).toString('base64') };
      // NODE_OPTIONS is node's own, not the application's.
      for (const key of Object.keys(env)) if (key !== 'NODE_OPTIONS') expect(known.has(key), `${name}: ${key} is not in lib/config.ts`).toBe(true);
      expect(() => loadConfig(env), name).not.toThrow();
    }
  });

  it('runs the dispatcher with the Node flags of its Kubernetes Deployment (its heap ceiling)', () => {
    expect(splitFlags(compose.services.dispatcher!.environment?.NODE_OPTIONS ?? '')).toEqual(deployedNodeOptions('dispatcher'));
  });

  it('runs only npm scripts that exist', () => {
    const scripts = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> }).scripts;
    for (const [name, svc] of Object.entries(compose.services)) {
      if (svc.command?.[0] === 'npm' && svc.command[1] === 'run') expect(scripts[svc.command[2]!], `${name}: npm run ${svc.command[2]}`).toBeDefined();
    }
  });
});
