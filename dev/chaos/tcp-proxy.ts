/**
 * A toggleable TCP proxy in front of a shared service (S3, SMTP, the registry): the chaos processes
 * are pointed at its port, so "the service is down" is the proxy refusing connections and cutting
 * the open ones, while the real service keeps running for everyone else.
 */
import net from 'node:net';

export interface TcpProxy {
  port: number;
  readonly isUp: boolean;
  /** Stop listening and cut every open connection. */
  down(): Promise<void>;
  /** Listen again on the same port. */
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }, port = 0): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  });
  let up = false;
  const listen = (p: number): Promise<number> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(p, '127.0.0.1', () => {
        server.off('error', reject);
        up = true;
        resolve((server.address() as net.AddressInfo).port);
      });
    });
  const bound = await listen(port);
  const stop = async (): Promise<void> => {
    if (!up) return;
    up = false;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of sockets) s.destroy();
    await closed;
  };
  return {
    port: bound,
    get isUp() {
      return up;
    },
    down: stop,
    async up() {
      if (!up) await listen(bound);
    },
    close: stop,
  };
}

/** host and port of a URL (default port by scheme). */
export function hostPortOf(url: string): { host: string; port: number } {
  const u = new URL(url);
  const port = u.port ? Number(u.port) : ({ 'http:': 80, 'https:': 443, 'smtp:': 25, 'smtps:': 465 } as Record<string, number>)[u.protocol] ?? 80;
  return { host: u.hostname, port };
}

/** The same URL with its host and port replaced by the proxy's. */
export function viaProxy(url: string, proxy: TcpProxy): string {
  const u = new URL(url);
  u.hostname = '127.0.0.1';
  u.port = String(proxy.port);
  return u.toString().replace(/\/$/, url.endsWith('/') ? '/' : '');
}
