/**
 * SSRF guard: a base URL that a customer configured (generic receiver, apiBaseUrl override, resume
 * URL) must not reach into our own network. The check runs where the address is actually chosen —
 * inside the socket's DNS lookup — so DNS rebinding between a pre-check and the connect cannot
 * bypass it; IP literals (which skip DNS) are checked before the request.
 */
import dns from 'node:dns';
import net from 'node:net';
import { AtsError } from './ats-error.ts';

const blocked = new net.BlockList();
for (const [prefix, bits] of [
  ['0.0.0.0', 8], // "this" network
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local (cloud metadata lives here)
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15], // benchmarking
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved + broadcast
] as const) {
  blocked.addSubnet(prefix, bits, 'ipv4');
}
for (const [prefix, bits] of [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
] as const) {
  blocked.addSubnet(prefix, bits, 'ipv6');
}

/** True for private, loopback, link-local and other non-public addresses (IPv4-mapped IPv6 included). */
export function isPrivateAddress(address: string): boolean {
  const family = net.isIP(address);
  if (family === 4) return blocked.check(address, 'ipv4');
  if (family === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped) return blocked.check(mapped[1]!, 'ipv4');
    return blocked.check(address, 'ipv6');
  }
  return false;
}

export const PRIVATE_ADDRESS_ERROR = 'ERR_ATS_PRIVATE_ADDRESS';

function refusal(host: string, address: string): AtsError {
  return new AtsError(
    'forbidden',
    `refusing to connect to ${host}: it resolves to the non-public address ${address} (set ATS_ALLOW_PRIVATE_NETWORKS=true only for tests and the sandbox)`,
    { context: { ssrf: true } },
  );
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;

/** A `lookup` for net/tls.connect that fails when any resolved address is non-public. */
export function guardedLookup(allowPrivateNetworks: boolean) {
  return (hostname: string, options: dns.LookupOptions, callback: LookupCallback): void => {
    dns.lookup(hostname, { ...options }, (err, address, family) => {
      if (err || allowPrivateNetworks) return callback(err, address, family);
      const list = Array.isArray(address) ? address : [{ address, family }];
      const bad = list.find((a) => isPrivateAddress(a.address));
      if (bad) {
        const refused = Object.assign(refusal(hostname, bad.address), { errno: 0, syscall: 'lookup' }) as unknown as NodeJS.ErrnoException;
        return callback(refused, address, family);
      }
      callback(null, address, family);
    });
  };
}

/** Check a URL before a request: scheme, and IP literals (hostnames are checked at connect time). */
export function assertUrlAllowed(url: URL, allowPrivateNetworks: boolean): void {
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new AtsError('validation_failed', `unsupported URL scheme ${url.protocol}`, { context: { ssrf: true } });
  }
  if (url.username || url.password) {
    throw new AtsError('validation_failed', 'URLs with embedded credentials are not accepted', { context: { ssrf: true } });
  }
  if (allowPrivateNetworks) return;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (net.isIP(host) && isPrivateAddress(host)) throw refusal(host, host);
}

/**
 * Resolve a configured base URL now and refuse it if it points inward — for the integrations API,
 * which wants a clear answer when a customer saves the URL, before any delivery.
 */
export async function checkBaseUrl(raw: string, allowPrivateNetworks: boolean): Promise<void> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new AtsError('validation_failed', 'base URL is not a valid URL', { context: { ssrf: true } });
  }
  assertUrlAllowed(url, allowPrivateNetworks);
  if (allowPrivateNetworks || net.isIP(url.hostname.replace(/^\[|\]$/g, ''))) return;
  const addresses = await dns.promises.lookup(url.hostname, { all: true }).catch((cause: unknown) => {
    throw new AtsError('network', `cannot resolve ${url.hostname}`, { cause, context: { ssrf: true } });
  });
  const bad = addresses.find((a) => isPrivateAddress(a.address));
  if (bad) throw refusal(url.hostname, bad.address);
}
