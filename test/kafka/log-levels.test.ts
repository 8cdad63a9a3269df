/**
 * kafkajs' log entries as pino levels: what an operator is alerted by. Entries shaped as kafkajs
 * writes them (node_modules/kafkajs/src/network/connection.js, producer/sendMessages.js).
 */
import { describe, expect, it } from 'vitest';
// A test of the adapter's own mapping, below the port on purpose.
// eslint-disable-next-line no-restricted-imports
import { pinoLevelOf } from '../../lib/kafka/kafkajs-adapter.ts';

/** kafkajs' logLevel values. */
const logLevel = { ERROR: 1, WARN: 2, INFO: 4 } as const;

const entry = (namespace: string, level: number, message: string, extra: Record<string, unknown> = {}) => ({
  namespace,
  level,
  log: { timestamp: '2026-12-02T00:00:00.000Z', message, ...extra },
});

describe('kafkajs log levels', () => {
  it('logs the answers kafkajs retries on its own (a new topic, a moved leader) at debug, the connection line and the producer line alike', () => {
    for (const error of ['This server does not host this topic-partition', 'This server is not the leader for that topic-partition']) {
      expect(pinoLevelOf(entry('Connection', logLevel.ERROR, 'Response Produce(key: 0, version: 7)', { broker: '127.0.0.1:9092', error, correlationId: 3 }))).toBe('debug');
      expect(pinoLevelOf(entry('Producer', logLevel.ERROR, `Failed to send messages: ${error}`, { retryCount: 0, retryTime: 300 }))).toBe('debug');
    }
  });

  it('logs group coordination answers kafkajs handles itself (a rebalance under way, a coordinator loading or moved) at debug', () => {
    const answers = [
      ['Heartbeat(key: 12, version: 3)', 'The group is rebalancing, so a rejoin is needed'],
      ['InitProducerId(key: 22, version: 1)', "The coordinator is loading and hence can't process requests for this group"],
      ['FindCoordinator(key: 10, version: 2)', 'The group coordinator is not available'],
      ['OffsetCommit(key: 8, version: 5)', 'This is not the correct coordinator for this group'],
    ];
    for (const [request, error] of answers) {
      expect(pinoLevelOf(entry('Connection', logLevel.ERROR, `Response ${request}`, { broker: '127.0.0.1:9092', clientId: 'ats-relay-dispatcher', error, correlationId: 42, size: 10 }))).toBe('debug');
    }
  });

  it('keeps every other error an error, and maps the rest by level', () => {
    expect(pinoLevelOf(entry('Producer', logLevel.ERROR, 'Failed to send messages: Connection error: connect ECONNREFUSED 127.0.0.1:9092', { retryCount: 2 }))).toBe('error');
    expect(pinoLevelOf(entry('Connection', logLevel.ERROR, 'Response Produce(key: 0, version: 7)', { error: 'The request attempted to perform an operation on an invalid topic' }))).toBe('error');
    expect(pinoLevelOf(entry('Producer', logLevel.ERROR, 'This server is not the leader for that topic-partition'))).toBe('error');
    expect(pinoLevelOf(entry('Consumer', logLevel.WARN, 'The group is rebalancing, re-joining'))).toBe('warn');
    expect(pinoLevelOf(entry('Producer', logLevel.WARN, 'Limiting retries for the idempotent producer may invalidate EoS guarantees'))).toBe('debug');
    expect(pinoLevelOf(entry('Consumer', logLevel.INFO, 'Starting'))).toBe('info');
  });
});
