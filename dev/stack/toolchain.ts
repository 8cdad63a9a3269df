/**
 * Java and Maven discovery, and artifact downloads through Maven (the only route to Maven Central
 * that needs no hard-coded host). Every failure is a StackError with the fix in its message.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, writeFile, rm, rename } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const DEPENDENCY_PLUGIN = 'org.apache.maven.plugins:maven-dependency-plugin:3.8.1';

export class StackError extends Error {
  override name = 'StackError';
}

export interface Java {
  bin: string;
  major: number;
}

async function javaMajor(bin: string): Promise<number | undefined> {
  try {
    const { stderr, stdout } = await run(bin, ['-version']);
    const m = /version "(\d+)(?:\.(\d+))?/.exec(stderr + stdout);
    if (!m) return undefined;
    const first = Number(m[1]);
    return first === 1 ? Number(m[2]) : first;
  } catch {
    return undefined;
  }
}

/** The `java` on PATH (or in JAVA_HOME as given); Kafka 4 and S3Mock 4 need 17+. */
export async function findJava(javaHome: string | undefined): Promise<Java> {
  const bin = javaHome ? path.join(javaHome, 'bin', 'java') : 'java';
  const major = await javaMajor(bin);
  if (major === undefined) throw new StackError(`Java was not found (${bin}). Install a JDK 17+ (e.g. apt-get install openjdk-17-jdk-headless).`);
  if (major < 17) throw new StackError(`Java ${major} found at ${bin}; Kafka 4 and S3Mock need Java 17 or newer.`);
  return { bin, major };
}

/** A Java 21+ for Apicurio 3.x: the configured home, else the default java, else any JDK under /usr/lib/jvm. */
export async function findJava21(configured: string | undefined, fallback: Java): Promise<Java | undefined> {
  if (configured) {
    const bin = path.join(configured, 'bin', 'java');
    const major = await javaMajor(bin);
    if (major === undefined || major < 21) throw new StackError(`STACK_JAVA21_HOME=${configured} holds no Java 21+ (found ${major ?? 'none'}).`);
    return { bin, major };
  }
  if (fallback.major >= 21) return fallback;
  const jvmDir = '/usr/lib/jvm';
  if (!existsSync(jvmDir)) return undefined;
  const found: Java[] = [];
  for (const entry of readdirSync(jvmDir)) {
    const bin = path.join(jvmDir, entry, 'bin', 'java');
    if (!existsSync(bin)) continue;
    const major = await javaMajor(bin);
    if (major !== undefined && major >= 21) found.push({ bin, major });
  }
  return found.sort((a, b) => a.major - b.major)[0];
}

export async function findMaven(): Promise<string> {
  try {
    await run('mvn', ['-v']);
    return 'mvn';
  } catch {
    throw new StackError('Maven (mvn) was not found. Install it (e.g. apt-get install maven): the stack fetches Kafka, Apicurio and S3Mock from Maven Central with it.');
  }
}

async function mvn(args: string[], what: string): Promise<void> {
  try {
    await run('mvn', ['-q', '-B', ...args], { maxBuffer: 16 * 1024 * 1024, timeout: 20 * 60_000 });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    const detail = `${e.stdout ?? ''}${e.stderr ?? ''}`.split('\n').filter((l) => l.includes('ERROR')).slice(0, 3).join('\n');
    throw new StackError(`downloading ${what} from Maven Central failed:\n${detail || e.message}`);
  }
}

/** Copy one artifact (group:artifact:version:type[:classifier]) into `dir`; returns the file path. */
export async function fetchArtifact(coords: string, dir: string, fileName: string): Promise<string> {
  const target = path.join(dir, fileName);
  if (existsSync(target)) return target;
  await mkdir(dir, { recursive: true });
  const tmp = `${dir}.part`;
  await rm(tmp, { recursive: true, force: true });
  await mvn([`${DEPENDENCY_PLUGIN}:copy`, `-Dartifact=${coords}`, `-DoutputDirectory=${tmp}`], coords);
  await rename(path.join(tmp, fileName), target);
  await rm(tmp, { recursive: true, force: true });
  return target;
}

/** Resolve a pom's runtime classpath into `libDir` (skipped when already complete). */
export async function fetchClasspath(pomXml: string, libDir: string, what: string): Promise<void> {
  const doneMarker = path.join(libDir, '.complete');
  if (existsSync(doneMarker)) return;
  const work = `${libDir}.work`;
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  const pom = path.join(work, 'pom.xml');
  await writeFile(pom, pomXml);
  await mvn(['-f', pom, `${DEPENDENCY_PLUGIN}:copy-dependencies`, '-DincludeScope=runtime', `-DoutputDirectory=${path.join(work, 'libs')}`], what);
  await rm(libDir, { recursive: true, force: true });
  await rename(path.join(work, 'libs'), libDir);
  await rm(work, { recursive: true, force: true });
  await writeFile(doneMarker, new Date().toISOString());
}

export async function extract(archive: string, into: string): Promise<void> {
  const doneMarker = path.join(into, '.complete');
  if (existsSync(doneMarker)) return;
  await rm(into, { recursive: true, force: true });
  await mkdir(into, { recursive: true });
  try {
    if (archive.endsWith('.zip')) await run('unzip', ['-q', '-o', archive, '-d', into]);
    else await run('tar', ['-xzf', archive, '-C', into]);
  } catch (err) {
    throw new StackError(`could not unpack ${archive}: ${(err as Error).message}`);
  }
  await writeFile(doneMarker, new Date().toISOString());
}
