/**
 * deploy/k8s/ rendered (base and the production overlay) and checked against the code: every
 * environment variable is one lib/config.ts declares and every process's environment loads, each
 * role has its Deployment with probes, a disruption budget and a grace period above its shutdown
 * timeout, and each autoscaled consumer group scales on its own group and topic, never past the
 * topic's partitions.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DEFAULT_GROUP_ID as ALERTS_GROUP } from '../consumers/alerts/options.ts';
import { groupIdFor } from '../consumers/dispatcher/index.ts';
import { DEFAULT_GROUP_ID as DLQ_S3_GROUP } from '../consumers/dlq-s3-sink/options.ts';
import { CONFIG_VARS, loadConfig, type Config } from '../lib/config.ts';
import { topicSpecs } from '../lib/topics.ts';
import { deployedNodeOptions, heapCeilingMb, imageNodeOptions, splitFlags } from '../dev/node-options.ts';
import { expectBuiltCommand } from './support/built-command.ts';
import { renderKustomization, type Manifest } from './support/kustomize.ts';

interface EnvEntry {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string } };
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  args: string[];
  envFrom?: { configMapRef?: { name: string } }[];
  env?: EnvEntry[];
  ports?: { name: string; containerPort: number }[];
  readinessProbe?: { httpGet: { path: string; port: string } };
  livenessProbe?: { httpGet: { path: string; port: string } };
  resources: { requests: { cpu: string; memory: string }; limits: { memory: string; cpu?: string } };
}
interface PodSpec {
  terminationGracePeriodSeconds?: number;
  securityContext?: { runAsNonRoot?: boolean };
  containers: Container[];
}
const podSpec = (m: Manifest): PodSpec => (m.spec as { template: { spec: PodSpec } }).template.spec;

const known = new Map(CONFIG_VARS.map((v) => [v.env, v]));
/** Values that stand in for the Secret's keys: valid for loadConfig, never real. */
const SECRET_STAND_INS: Record<string, string> = {
  DATABASE_URL: 'postgres://ats_relay:secret@postgres.db.svc:5432/ats_relay',
  ATS_RELAY_ENCRYPTION_KEYS: 'k1:' + Buffer.alloc(32).toString('base64'),
  S3_SECRET_ACCESS_KEY: 'secret',
  SMTP_URL: 'smtps://user:secret@smtp.example.com:465',
};

const mebibytes = (q: string): number => {
  const m = /^(\d+)(Mi|Gi)$/.exec(q);
  if (!m) throw new Error(`memory quantity ${q}: use Mi or Gi`);
  return Number(m[1]) * (m[2] === 'Gi' ? 1024 : 1);
};

function containerEnv(manifests: Manifest[], where: string, c: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    const cm = manifests.find((m) => m.kind === 'ConfigMap' && m.metadata.name === from.configMapRef?.name);
    expect(cm, `${where}: ConfigMap ${from.configMapRef?.name}`).toBeDefined();
    Object.assign(env, (cm as unknown as { data: Record<string, string> }).data);
  }
  for (const name of Object.keys(env)) expect(known.get(name)?.secret, `${where}: secret ${name} in a ConfigMap`).not.toBe(true);
  for (const e of c.env ?? []) {
    const ref = e.valueFrom?.secretKeyRef;
    if (ref) {
      expect(ref.name, `${where}: ${e.name}`).toBe('ats-relay-secrets');
      expect(SECRET_STAND_INS[ref.key], `${where}: a stand-in for secret key ${ref.key}`).toBeDefined();
      env[e.name] = SECRET_STAND_INS[ref.key]!;
    } else {
      expect(known.get(e.name)?.secret, `${where}: secret ${e.name} as a literal`).not.toBe(true);
      env[e.name] = e.value ?? '';
    }
  }
  // NODE_OPTIONS is node's own, not the application's (checked on its own below).
  for (const name of Object.keys(env)) if (name !== 'NODE_OPTIONS') expect(known.has(name), `${where}: ${name} is not in lib/config.ts`).toBe(true);
  return env;
}

function checkRender(label: string, dir: string): void {
  const manifests = renderKustomization(fileURLToPath(new URL(`../deploy/k8s/${dir}`, import.meta.url)));
  const byKind = (kind: string): Manifest[] => manifests.filter((m) => m.kind === kind);
  const config = (where: string, c: Container): Config => {
    const env = containerEnv(manifests, where, c);
    let cfg: Config | undefined;
    expect(() => (cfg = loadConfig(env)), where).not.toThrow();
    return cfg!;
  };
  const configMap = (manifests.find((m) => m.kind === 'ConfigMap' && m.metadata.name === 'ats-relay-config') as unknown as { data: Record<string, string> }).data;
  const shared = loadConfig({ ...configMap, ...SECRET_STAND_INS });

  describe(label, () => {
    it('gives every container only variables lib/config.ts declares, secrets from the Secret, and an environment that loads', () => {
      for (const m of [...byKind('Deployment'), ...byKind('Job')]) {
        for (const c of podSpec(m).containers) {
          const where = `${m.kind} ${m.metadata.name}`;
          config(where, c);
          // The image's ENTRYPOINT (tini) must stay PID 1: args only, and plain node on built code.
          expect(c.command, `${where}: command would replace tini`).toBeUndefined();
          expectBuiltCommand(where, c.args);
          expect(podSpec(m).securityContext?.runAsNonRoot, where).toBe(true);
        }
      }
    });

    it('runs one Deployment per role, probed on /readyz and /healthz, with a grace period above SHUTDOWN_TIMEOUT_MS and a PodDisruptionBudget', () => {
      const roles = ['dispatcher', ...shared.topics.retryTiers.map((t) => t.name), 'dlq-s3', 'alerts', 'outbox-relay', 'api'];
      expect(byKind('Deployment').map((d) => d.metadata.name).sort()).toEqual(roles.map((r) => `ats-relay-${r}`).sort());
      for (const d of byKind('Deployment')) {
        const spec = podSpec(d);
        const c = spec.containers[0]!;
        const cfg = config(d.metadata.name, c);
        expect(spec.terminationGracePeriodSeconds! * 1000, `${d.metadata.name} grace period`).toBeGreaterThan(cfg.http.shutdownTimeoutMs);
        expect(c.readinessProbe?.httpGet.path, d.metadata.name).toBe('/readyz');
        expect(c.livenessProbe?.httpGet.path, d.metadata.name).toBe('/healthz');
        const port = c.ports?.find((p) => p.name === c.readinessProbe!.httpGet.port)?.containerPort;
        expect(port, `${d.metadata.name}: the probed port is the one the process listens on`).toBe(d.metadata.name === 'ats-relay-api' ? cfg.http.apiPort : cfg.http.port);
        expect(c.livenessProbe!.httpGet.port).toBe(c.readinessProbe!.httpGet.port);
        expect(c.resources.limits.cpu, `${d.metadata.name}: no CPU limit (throttling stalls heartbeats)`).toBeUndefined();
        expect(mebibytes(c.resources.requests.memory)).toBeLessThanOrEqual(mebibytes(c.resources.limits.memory));
        const nodeOptions = c.env?.find((e) => e.name === 'NODE_OPTIONS')?.value;
        if (nodeOptions !== undefined) {
          const flags = splitFlags(nodeOptions);
          // A pod's NODE_OPTIONS replaces the image's: the image's flags must be repeated.
          for (const f of imageNodeOptions()) expect(flags, `${d.metadata.name}: NODE_OPTIONS keeps the image's ${f}`).toContain(f);
          // Young generation, code, sockets and Buffers live outside old space: at most half the limit for it.
          const ceiling = heapCeilingMb(flags);
          if (ceiling !== undefined) expect(ceiling, `${d.metadata.name}: heap ceiling within its memory limit`).toBeLessThanOrEqual(mebibytes(c.resources.limits.memory) / 2);
        }
        const labels = (d.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels;
        const pdb = byKind('PodDisruptionBudget').find((p) => p.metadata.name === d.metadata.name);
        expect(pdb, `${d.metadata.name} PodDisruptionBudget`).toBeDefined();
        expect((pdb!.spec as { selector: { matchLabels: unknown } }).selector.matchLabels).toEqual(labels);
      }
      // Sized from the benchmark: the dispatcher's peak RSS target is 250 MB; its limit leaves headroom.
      const dispatcher = podSpec(byKind('Deployment').find((d) => d.metadata.name === 'ats-relay-dispatcher')!).containers[0]!;
      expect(mebibytes(dispatcher.resources.requests.memory)).toBeGreaterThanOrEqual(250);
      expect(mebibytes(dispatcher.resources.limits.memory)).toBeGreaterThanOrEqual(400);
      // Its heap ceiling is stated, and it is what npm run bench runs the dispatcher with.
      const flags = splitFlags(dispatcher.env?.find((e) => e.name === 'NODE_OPTIONS')?.value ?? '');
      expect(heapCeilingMb(flags)).toBeDefined();
      expect(flags).toEqual(deployedNodeOptions('dispatcher'));
    });

    it('autoscales each consumer group on its own lag with KEDA, at most one member per partition', () => {
      const partitions = new Map(topicSpecs(shared.topics).map((s) => [s.topic, s.partitions]));
      const groups: [string, string, string][] = [
        ['dispatcher', groupIdFor({ role: 'dispatcher' }), shared.topics.applications],
        ...shared.topics.retryTiers.map((t): [string, string, string] => [t.name, groupIdFor({ role: 'retry', tier: t.name }), t.topic]),
        ['dlq-s3', DLQ_S3_GROUP, shared.topics.dlq],
      ];
      const scaled = byKind('ScaledObject');
      expect(scaled.map((s) => s.metadata.name).sort()).toEqual(groups.map(([r]) => `ats-relay-${r}`).sort());
      // alerts is not autoscaled: each member would send its own digests, and its lag is by design
      // up to one ALERT_WINDOW_MS of dead letters (it commits after a digest is sent).
      expect(scaled.some((s) => s.metadata.name === 'ats-relay-alerts')).toBe(false);
      expect(ALERTS_GROUP).toBe('ats-relay.alerts');
      for (const [role, group, topic] of groups) {
        const so = scaled.find((s) => s.metadata.name === `ats-relay-${role}`)!;
        const spec = so.spec as { scaleTargetRef: { name: string }; minReplicaCount: number; maxReplicaCount: number; triggers: { type: string; metadata: Record<string, string> }[] };
        expect(spec.scaleTargetRef.name).toBe(`ats-relay-${role}`);
        expect(spec.minReplicaCount, role).toBeGreaterThanOrEqual(1);
        expect(spec.maxReplicaCount, `${role}: at most one member per partition of ${topic}`).toBeLessThanOrEqual(partitions.get(topic)!);
        expect(spec.triggers).toHaveLength(1);
        const t = spec.triggers[0]!;
        expect(t.type).toBe('kafka');
        expect(t.metadata, role).toMatchObject({ consumerGroup: group, topic, bootstrapServers: shared.kafka.brokers.join(','), allowIdleConsumers: 'false' });
        expect(Number(t.metadata.lagThreshold), role).toBeGreaterThan(0);
      }
    });

    it('has Jobs for migrations and `topics ensure`', () => {
      const args = byKind('Job').map((j) => podSpec(j).containers[0]!.args.join(' '));
      expect(args.sort()).toEqual(['node dist/scripts/db-migrate.js', 'node dist/scripts/topics.js ensure']);
    });
  });
}

checkRender('deploy/k8s/base', 'base');
checkRender('deploy/k8s/overlays/production', 'overlays/production');

describe('the production overlay', () => {
  const manifests = renderKustomization(fileURLToPath(new URL('../deploy/k8s/overlays/production', import.meta.url)));
  it('pins the release image and puts everything in its namespace', () => {
    for (const m of manifests) expect(m.metadata.namespace, `${m.kind} ${m.metadata.name}`).toBe('ats-relay');
    for (const m of manifests.filter((x) => x.kind === 'Deployment' || x.kind === 'Job')) {
      for (const c of podSpec(m).containers) expect(c.image).toMatch(/^registry\.example\.com\/ats-relay:\d+\.\d+\.\d+$/);
    }
  });

  it('patches the base rather than replacing it (strategic merge keeps the dispatcher\'s probes and env)', () => {
    const d = manifests.find((m) => m.kind === 'Deployment' && m.metadata.name === 'ats-relay-dispatcher')!;
    const c = podSpec(d).containers[0]!;
    expect(c.resources.requests.cpu).toBe('1');
    expect(c.readinessProbe).toBeDefined();
    expect(c.env?.length).toBeGreaterThan(0);
  });
});
