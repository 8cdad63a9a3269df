/**
 * The part of kustomize that deploy/k8s/ uses, so a test can render it without the binary:
 * `resources` (files and kustomization folders), `namespace`, `images`, `labels` (metadata only)
 * and `patches` by path (merge patches matched on kind and name). A kustomization field outside
 * that set fails loudly rather than rendering something kubectl would not.
 *
 * Patch semantics follow kustomize: built-in kinds get a strategic merge, where lists of objects
 * with a `name` (containers, env, ports) merge item by item; custom resources (KEDA's
 * ScaledObject) get a JSON merge patch, where a list is replaced whole.
 */
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

interface Kustomization {
  resources?: string[];
  namespace?: string;
  images?: { name: string; newName?: string; newTag?: string }[];
  labels?: { pairs: Record<string, string> }[];
  patches?: { path: string }[];
  apiVersion?: string;
  kind?: string;
}

const SUPPORTED = new Set(['apiVersion', 'kind', 'resources', 'namespace', 'images', 'labels', 'patches']);
const BUILT_IN_GROUPS = /^(v1|apps\/v1|batch\/v1|policy\/v1)$/;

function readDocs(file: string): Manifest[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJSON() as Manifest | null)
    .filter((m): m is Manifest => m !== null);
}

type Json = unknown;
const isObject = (v: Json): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function mergePatch(base: Json, patch: Json, strategic: boolean): Json {
  if (Array.isArray(base) && Array.isArray(patch) && strategic && patch.every((p) => isObject(p) && typeof p.name === 'string')) {
    const out = [...base];
    for (const p of patch as Record<string, Json>[]) {
      const i = out.findIndex((b) => isObject(b) && b.name === p.name);
      if (i >= 0) out[i] = mergePatch(out[i], p, strategic);
      else out.push(p);
    }
    return out;
  }
  if (!isObject(base) || !isObject(patch)) return patch;
  const out: Record<string, Json> = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = k in base ? mergePatch(base[k], v, strategic) : v;
  }
  return out;
}

function containersOf(m: Manifest): { image?: string }[] {
  const spec = (m.spec as { template?: { spec?: { containers?: { image?: string }[] } } } | undefined)?.template?.spec;
  return spec?.containers ?? [];
}

export function renderKustomization(dir: string): Manifest[] {
  const k = readDocs(path.join(dir, 'kustomization.yaml'))[0] as unknown as Kustomization;
  for (const field of Object.keys(k)) if (!SUPPORTED.has(field)) throw new Error(`${dir}/kustomization.yaml: "${field}" is not rendered by test/support/kustomize.ts`);
  let out: Manifest[] = [];
  for (const r of k.resources ?? []) {
    const p = path.join(dir, r);
    out.push(...(statSync(p).isDirectory() ? renderKustomization(p) : readDocs(p)));
  }
  for (const { path: file } of k.patches ?? []) {
    for (const patch of readDocs(path.join(dir, file))) {
      const i = out.findIndex((m) => m.kind === patch.kind && m.metadata.name === patch.metadata.name);
      if (i < 0) throw new Error(`${dir}/${file}: no ${patch.kind} ${patch.metadata.name} to patch`);
      out[i] = mergePatch(out[i], patch, BUILT_IN_GROUPS.test(patch.apiVersion)) as Manifest;
    }
  }
  out = out.map((m) => structuredClone(m));
  for (const m of out) {
    if (k.namespace) m.metadata.namespace = k.namespace;
    for (const { pairs } of k.labels ?? []) m.metadata.labels = { ...m.metadata.labels, ...pairs };
    for (const c of containersOf(m)) {
      const image = k.images?.find((i) => c.image === i.name || c.image?.startsWith(`${i.name}:`));
      if (image) c.image = `${image.newName ?? image.name}:${image.newTag ?? c.image!.split(':')[1] ?? 'latest'}`;
    }
  }
  return out;
}
