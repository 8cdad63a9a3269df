/**
 * The connectors' HTTP client on a real local server: bodies gathered whole (one chunk or many),
 * the response cap enforced whether the length is declared or not, informational answers skipped,
 * and a caller's abort honoured even before the request has a socket.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AtsHttp } from '../../connectors/http.ts';

let server: http.Server;
let base: string;
const client = new AtsHttp({ requestTimeoutMs: 5_000, allowPrivateNetworks: true, maxResponseBytes: 1_000, connectionsPerOrigin: 1 });

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    const size = Number(url.searchParams.get('size') ?? 0);
    if (url.pathname === '/declared') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(size) }).end('a'.repeat(size));
    } else if (url.pathname === '/chunked') {
      // Several writes without a length: the client sees a chunked body in pieces.
      res.writeHead(200, { 'content-type': 'application/json', 'x-part': 'one' });
      const piece = 'b'.repeat(100);
      let sent = 0;
      const tick = (): void => {
        if (sent + 100 > size) {
          res.end('b'.repeat(size - sent));
          return;
        }
        res.write(piece);
        sent += 100;
        setImmediate(tick);
      };
      tick();
    } else if (url.pathname === '/early-hints') {
      res.writeEarlyHints({ link: '</style.css>; rel=preload' }, () => res.writeHead(201, { 'content-type': 'application/json' }).end('{"ok":true}'));
    } else if (url.pathname === '/slow') {
      setTimeout(() => res.end('late'), 1_000);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await client.close();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe('AtsHttp', () => {
  it('gathers a declared-length body and a chunked one, with status, headers, text and JSON views', async () => {
    const declared = await client.send({ method: 'GET', url: `${base}/declared?size=1000` });
    expect(declared).toMatchObject({ status: 200, headers: { 'content-type': 'text/plain', 'content-length': '1000' } });
    expect(declared.body.equals(Buffer.from('a'.repeat(1000)))).toBe(true);
    expect(declared.json()).toBeUndefined(); // not JSON

    const chunked = await client.send({ method: 'GET', url: `${base}/chunked?size=950` });
    expect(chunked.status).toBe(200);
    expect(chunked.headers['x-part']).toBe('one');
    expect(chunked.text()).toBe('b'.repeat(950));
  });

  it('refuses a body over the cap, declared or not (unexpected_response, final), and the client stays usable', async () => {
    await expect(client.send({ method: 'GET', url: `${base}/declared?size=1001` })).rejects.toMatchObject({ code: 'unexpected_response', retriable: false, status: 200, context: { bodyTooLarge: true } });
    await expect(client.send({ method: 'GET', url: `${base}/chunked?size=5000` })).rejects.toMatchObject({ code: 'unexpected_response', context: { bodyTooLarge: true } });
    // A request's own cap overrides the client's.
    expect((await client.send({ method: 'GET', url: `${base}/declared?size=3000`, maxBodyBytes: 4_000 })).body).toHaveLength(3000);
    expect((await client.send({ method: 'GET', url: `${base}/declared?size=10` })).text()).toBe('a'.repeat(10));
  });

  it('skips an informational answer (103) and returns the real one', async () => {
    const res = await client.send({ method: 'POST', url: `${base}/early-hints`, body: '{}', headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(201);
    expect(res.json()).toEqual({ ok: true });
  });

  it("honours a caller's abort in flight and while still queued for the origin's only socket", async () => {
    const ac = new AbortController();
    const inFlight = client.send({ method: 'GET', url: `${base}/slow`, signal: ac.signal });
    const queued = client.send({ method: 'GET', url: `${base}/slow`, signal: ac.signal });
    const other = client.send({ method: 'GET', url: `${base}/declared?size=3` }); // another caller's request, queued too
    const started = Date.now();
    setTimeout(() => ac.abort(new Error('shutting down')), 100);
    await expect(inFlight).rejects.toMatchObject({ code: 'network', retriable: true });
    await expect(queued).rejects.toMatchObject({ code: 'network', retriable: true });
    expect(Date.now() - started).toBeLessThan(900);
    expect((await other).text()).toBe('aaa');
    // Aborted before it was sent at all.
    await expect(client.send({ method: 'GET', url: `${base}/declared?size=3`, signal: ac.signal })).rejects.toMatchObject({ code: 'network' });
  });
});
