import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_VARS, ConfigError, devKeyringPath, envFromConfig, loadConfig } from '../lib/config.ts';
import { configTableMarkdown } from '../dev/config-table.ts';

describe('config', () => {
  it('has defaults that match the local stack', () => {
    const config = loadConfig({});
    expect(config.kafka.brokers).toEqual(['127.0.0.1:9092']);
    expect(config.schemaRegistry.url).toBe('http://127.0.0.1:8081/apis/ccompat/v7');
    expect(config.database.url).toBe('postgres://postgres@127.0.0.1:5432/ats_relay');
    expect(config.topics.retryTiers.map((t) => [t.topic, t.delayMs])).toEqual([
      ['ats.applications.retry-30s', 30_000],
      ['ats.applications.retry-2m', 120_000],
      ['ats.applications.retry-5m', 300_000],
    ]);
    expect(config.topics.dlq).toBe('ats.applications.dlq');
    expect(config.stack.kafkaPort).toBe(9092);
    expect(config.stack.smtpPort).toBe(1025);
  });

  it('names the variable and the rule when a value is invalid', () => {
    expect(() => loadConfig({ TOPIC_PARTITIONS: 'twelve' })).toThrow(/TOPIC_PARTITIONS: must be a whole number, got "twelve"/);
    expect(() => loadConfig({ SMTP_URL: 'http://mail' })).toThrow(/SMTP_URL: must use smtp: or smtps:/);
    expect(() => loadConfig({ RETRY_TIERS: 'retry-30s=30000' })).toThrow(/RETRY_TIERS: each tier is name:delayMs/);
    expect(() => loadConfig({ LOG_LEVEL: 'loud' })).toThrow(ConfigError);
  });

  it('reports every bad variable at once', () => {
    try {
      loadConfig({ TOPIC_PARTITIONS: '0', ALERT_EMAIL_TO: 'not-an-address', RETRY_JITTER: '3' });
      expect.unreachable();
    } catch (err) {
      const message = (err as Error).message;
      expect(message).toContain('TOPIC_PARTITIONS');
      expect(message).toContain('ALERT_EMAIL_TO');
      expect(message).toContain('RETRY_JITTER');
    }
  });

  it('never prints a secret in an error', () => {
    expect(() => loadConfig({ DATABASE_URL: 'mysql://u:hunter2@db/x' })).toThrow(/DATABASE_URL/);
    try {
      loadConfig({ SMTP_URL: 'bogus://u:hunter2@mail' });
    } catch (err) {
      expect((err as Error).message).not.toContain('hunter2');
    }
  });

  it('takes the keyring from the variable, else from the local stack\'s dev keyring, else none', () => {
    const home = mkdtempSync(path.join(tmpdir(), 'stack-home-'));
    expect(loadConfig({ STACK_HOME: home }).crypto).toEqual({ encryptionKeys: undefined, source: 'none' });
    writeFileSync(devKeyringPath(home), 'dev:abc\n');
    expect(loadConfig({ STACK_HOME: home }).crypto).toEqual({ encryptionKeys: 'dev:abc', source: 'dev-keyring' });
    expect(loadConfig({ STACK_HOME: home, ATS_RELAY_ENCRYPTION_KEYS: 'k1:xyz' }).crypto).toEqual({ encryptionKeys: 'k1:xyz', source: 'env' });
    // The dev keyring is never handed on as if it were configured.
    expect(envFromConfig(loadConfig({ STACK_HOME: home })).ATS_RELAY_ENCRYPTION_KEYS).toBeUndefined();
  });

  it('is documented in the README, variable by variable, with the defaults the code uses', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    expect(readme).toContain(configTableMarkdown());
    for (const v of CONFIG_VARS) expect(readme).toContain(`\`${v.env}\``);
  });
});
