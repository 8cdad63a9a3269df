/**
 * The resume budget: deliveries with a resume hold at most RESUME_BYTES_IN_FLIGHT of them at once
 * (connectors/byte-budget.ts); without it, memory grows with in-flight × resume size.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DocumentRef } from '../../lib/application.ts';
import { ByteBudget } from '../../connectors/byte-budget.ts';
import { SAMPLE_RESUME } from '../../sandbox/server.ts';
import { waitFor } from '../support/wait.ts';
import { fixture, startHarness, type Harness } from './support.ts';

describe('ByteBudget', () => {
  it('grants in arrival order while bytes last, a waiting large one is not overtaken, and release drains', async () => {
    const b = new ByteBudget(100);
    const order: string[] = [];
    expect(await b.acquire(60)).toBe(60);
    const big = b.acquire(70).then((n) => order.push(`big ${n}`));
    const small = b.acquire(10).then((n) => order.push(`small ${n}`)); // fits now, but big came first
    await Promise.resolve();
    expect(order).toEqual([]);
    expect(b.waiting).toBe(2);
    b.release(60);
    await Promise.all([big, small]);
    expect(order).toEqual(['big 70', 'small 10']);
    expect(b.reserved).toBe(80);
  });

  it('cuts a reservation larger than the budget to it, so it runs alone rather than never', async () => {
    const b = new ByteBudget(100);
    expect(await b.acquire(1_000)).toBe(100);
    let second = false;
    const next = b.acquire(1).then(() => (second = true));
    await Promise.resolve();
    expect(second).toBe(false);
    b.release(100);
    await next;
    expect(b.reserved).toBe(1);
  });

  it('an aborted wait rejects as aborted, leaves the queue, and lets the ones behind it through', async () => {
    const b = new ByteBudget(100);
    await b.acquire(50);
    const ac = new AbortController();
    const blocked = b.acquire(80, ac.signal);
    const behind = b.acquire(40);
    ac.abort();
    await expect(blocked).rejects.toMatchObject({ code: 'network', context: { aborted: true } });
    expect(await behind).toBe(40);
    expect(b.waiting).toBe(0);
    await expect(b.acquire(1, ac.signal)).rejects.toMatchObject({ context: { aborted: true } });
  });
});

describe('deliveries under a resume budget', () => {
  let h: Harness;
  let files: Server;
  let active = 0;
  let peak = 0;
  let served = 0;
  let resume: DocumentRef;
  /** While set, downloads wait for it instead of 150 ms. */
  let gate: Promise<void> | undefined;
  beforeAll(async () => {
    h = await startHarness({ resumeBytesInFlight: 2 * SAMPLE_RESUME.length });
    // Serves the resume slowly and counts downloads in progress: what the budget bounds.
    files = createServer((_req, res) => {
      active++;
      served++;
      peak = Math.max(peak, active);
      const answer = (): void => {
        active--;
        res.writeHead(200, { 'content-type': 'application/pdf' }).end(SAMPLE_RESUME);
      };
      if (gate) void gate.then(answer);
      else setTimeout(answer, 150);
    });
    await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
    resume = {
      url: `http://127.0.0.1:${(files.address() as AddressInfo).port}/cv.pdf`,
      fileName: 'cv.pdf',
      contentType: 'application/pdf',
      sizeBytes: SAMPLE_RESUME.length,
      sha256: createHash('sha256').update(SAMPLE_RESUME).digest('hex'),
    };
  });
  afterAll(async () => {
    await h.close();
    await new Promise((r) => files.close(r));
  });

  it('hold two resumes at a time, and every one is delivered with its resume', async () => {
    const f = fixture(h, 'greenhouse', { settings: { apiVersion: 'v1' } });
    const apps = Array.from({ length: 6 }, () => f.app({ resume }));
    const results = await Promise.all(apps.map((a) => h.connectors.deliver(a, f.integration)));
    expect(results.every((r) => r.deduplicated === false && !r.resumeOmitted)).toBe(true);
    expect(served).toBe(6);
    expect(peak).toBe(2);
    expect(h.sandbox.applications('greenhouse', f.tenant)).toHaveLength(6);
    expect(h.sandbox.attachments('greenhouse', f.tenant)).toHaveLength(6);
  });

  it('deliveries without a resume do not wait for the budget', async () => {
    let open!: () => void;
    gate = new Promise((r) => (open = r));
    const f = fixture(h, 'greenhouse', { settings: { apiVersion: 'v1' }, integration: { allowMissingResume: true } });
    served = 0;
    const withResume = Array.from({ length: 4 }, () => h.connectors.deliver(f.app({ resume }), f.integration));
    await waitFor('two downloads held', () => active === 2, 5_000, 10);
    // The budget is spent and two more wait for it; this one goes past them while the gate is shut.
    await expect(h.connectors.deliver(f.app({ resume: null }), f.integration)).resolves.toMatchObject({ resumeOmitted: 'absent' });
    expect(served).toBe(2);
    gate = undefined;
    open();
    await Promise.all(withResume);
    expect(served).toBe(4);
  });
});
