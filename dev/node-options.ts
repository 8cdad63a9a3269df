/**
 * The Node flags a process is deployed with: the image's NODE_OPTIONS (Dockerfile ENV) and a role's
 * own, from its Kubernetes Deployment (deploy/k8s/base/<role>.yaml), which replaces the image's
 * when set. The benchmark runs the dispatcher with them, and the deploy tests keep the places that
 * state them in agreement.
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';

const ROOT = new URL('../', import.meta.url);

/** The image's NODE_OPTIONS (the Dockerfile's ENV line), as flags. */
export function imageNodeOptions(): string[] {
  const m = /^ENV NODE_OPTIONS=(.*)$/m.exec(readFileSync(new URL('Dockerfile', ROOT), 'utf8'));
  return m ? splitFlags(m[1]!.replace(/^"|"$/g, '')) : [];
}

/** NODE_OPTIONS of a role's Deployment (deploy/k8s/base/<role>.yaml) as flags; the image's when it sets none. */
export function deployedNodeOptions(role: string): string[] {
  const docs = parseAllDocuments(readFileSync(new URL(`deploy/k8s/base/${role}.yaml`, ROOT), 'utf8')).map((d) => d.toJS() as Record<string, unknown>);
  const deployment = docs.find((d) => d.kind === 'Deployment') as { spec: { template: { spec: { containers: { env?: { name: string; value?: string }[] }[] } } } } | undefined;
  if (!deployment) throw new Error(`deploy/k8s/base/${role}.yaml has no Deployment`);
  const value = deployment.spec.template.spec.containers[0]?.env?.find((e) => e.name === 'NODE_OPTIONS')?.value;
  return value === undefined ? imageNodeOptions() : splitFlags(value);
}

/** The V8 old-space ceiling a set of flags states, MB; undefined when V8 derives it from the memory it sees. */
export function heapCeilingMb(flags: string[]): number | undefined {
  const flag = flags.find((f) => f.startsWith('--max-old-space-size='));
  return flag ? Number(flag.slice('--max-old-space-size='.length)) : undefined;
}

export function splitFlags(value: string): string[] {
  return value.split(/\s+/).filter(Boolean);
}
