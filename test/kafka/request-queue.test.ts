/**
 * The adapter's fix of kafkajs' request-queue polling (lib/kafka/kafkajs-adapter.ts): a connection
 * with nothing waiting no longer wakes its process every millisecond, and requests that do wait (behind
 * the in-flight limit, or a broker's throttle) still leave.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createProducer, type Producer } from '../../lib/kafka/index.ts';
// The adapter's own fix of a kafkajs internal, below the port on purpose.
// eslint-disable-next-line no-restricted-imports
import { kafkajsRequestQueue, PENDING_CHECK_INTERVAL_MS } from '../../lib/kafka/kafkajs-adapter.ts';
import { sleep } from '../../lib/sleep.ts';
import { waitFor } from '../support/wait.ts';
import { eventsHarness } from '../events/support.ts';

interface Queue {
  push(pushed: ReturnType<typeof request>): void;
  fulfillRequest(response: { correlationId: number; payload: Buffer | null; size: number }): void;
  maybeThrottle(ms: number): void;
  destroy(): void;
}
type QueueClass = new (opts: Record<string, unknown>) => Queue;

const RequestQueue = kafkajsRequestQueue() as unknown as QueueClass & { prototype: { checkPendingRequests(): void } };
const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const queue = (maxInFlightRequests: number | null): Queue =>
  new RequestQueue({ maxInFlightRequests, requestTimeout: 30_000, enforceRequestTimeout: false, clientId: 'test', broker: 'test:9092', logger: quiet });

/** A request whose sending is recorded; completed by the test through fulfillRequest. */
function request(correlationId: number, sent: number[]) {
  const entry = { correlationId, apiKey: 0, apiName: 'Produce', apiVersion: 7, resolve: () => undefined, reject: () => undefined };
  return { entry, expectResponse: true, sendRequest: () => void sent.push(correlationId) };
}

describe('kafkajs request queue polling', () => {
  const h = eventsHarness({ TOPIC_PARTITIONS: '1' });
  let producer: Producer;
  beforeAll(async () => {
    await h.createTopics();
    producer = createProducer(h.kafka);
    await producer.connect();
  });
  afterAll(async () => {
    await producer.disconnect();
    await h.close();
  });

  it('does not poll a connected, idle client (kafkajs 2.2.4 checked every connection every millisecond)', async () => {
    await producer.send({ topic: h.topic, messages: [{ key: 'k', value: Buffer.from('v') }] });
    const checks = vi.spyOn(RequestQueue.prototype, 'checkPendingRequests');
    try {
      await sleep(500);
      // Unfixed: one check per millisecond per connection, ~500 here for the producer's alone.
      expect(checks.mock.calls.length).toBeLessThan(20);
    } finally {
      checks.mockRestore();
    }
  });

  it('still sends a request that waited behind the in-flight limit once the one ahead completes', () => {
    const q = queue(1);
    const sent: number[] = [];
    q.push(request(1, sent));
    q.push(request(2, sent));
    expect(sent).toEqual([1]);
    q.fulfillRequest({ correlationId: 1, payload: null, size: 0 });
    expect(sent).toEqual([1, 2]);
    q.destroy();
  });

  it('still sends a request held back by a broker throttle when the throttle ends, and then stops checking', async () => {
    const q = queue(null);
    const sent: number[] = [];
    q.maybeThrottle(60);
    const pushedAt = Date.now();
    q.push(request(1, sent));
    expect(sent).toEqual([]);
    await waitFor('the throttled request to be sent', () => sent.length === 1, 2_000, 5);
    expect(Date.now() - pushedAt).toBeGreaterThanOrEqual(55);
    const checks = vi.spyOn(RequestQueue.prototype, 'checkPendingRequests');
    try {
      await sleep(5 * PENDING_CHECK_INTERVAL_MS);
      expect(checks).not.toHaveBeenCalled();
    } finally {
      checks.mockRestore();
      q.destroy();
    }
  });
});
