/**
 * What every test uses to reach the stack that the global setup prepared: the same typed config
 * the processes build, from the environment the setup provided.
 */
import { randomUUID } from 'node:crypto';
import { inject } from 'vitest';
import { loadConfig, type Config } from '../../lib/config.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    env: Record<string, string>;
  }
}

export function testEnv(overrides: Record<string, string> = {}): Record<string, string> {
  return { ...inject('env'), ...overrides };
}

export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig(testEnv(overrides));
}

/** A unique name for a topic, group, company or id, readable in Kafka UI and logs. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}
