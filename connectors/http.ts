/**
 * The HTTP client every connector uses: one undici Agent (a keep-alive Pool per ATS origin) with
 * connect / headers / body timeouts, the SSRF guard in its DNS lookup, and a shutdown that aborts
 * whatever is still in flight when the process closes. Transport failures come back as
 * AtsError (timeouts → timeout, resets/refusals → network; both retriable); HTTP statuses are the
 * caller's to interpret.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { Agent, request, type FormData } from 'undici';
import { AtsError } from './ats-error.ts';
import { assertUrlAllowed, guardedLookup } from './ssrf-guard.ts';

export interface HttpOptions {
  /** Time to the response headers, and the longest silence while reading a body. */
  requestTimeoutMs: number;
  connectTimeoutMs?: number;
  allowPrivateNetworks: boolean;
  /** Keep-alive sockets per ATS origin. */
  connectionsPerOrigin?: number;
  /** Cap on an API response body (resumes pass their own cap). */
  maxResponseBytes?: number;
}

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface HttpRequest {
  method: HttpMethod;
  url: string | URL;
  headers?: Record<string, string>;
  body?: string | Buffer | FormData;
  signal?: AbortSignal | undefined;
  maxBodyBytes?: number;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text(): string;
  /** Parsed JSON, or undefined when the body is empty or not JSON. */
  json(): unknown;
}

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

function errCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Map an undici / socket failure to an AtsError (an AtsError raised by the SSRF guard passes through). */
export function transportError(err: unknown, url: URL): AtsError {
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof AtsError) return e;
  }
  const code = errCode(err) ?? errCode((err as { cause?: unknown }).cause);
  const where = `${url.origin}${url.pathname}`;
  if (code && TIMEOUT_CODES.has(code)) return new AtsError('timeout', `${code} from ${where}`, { cause: err, context: { errno: code } });
  if (code && NETWORK_CODES.has(code)) return new AtsError('network', `${code} from ${where}`, { cause: err, context: { errno: code } });
  if ((err as Error | null)?.name === 'AbortError' || code === 'UND_ERR_ABORTED') {
    return new AtsError('network', `request to ${where} aborted`, { cause: err, context: { aborted: true } });
  }
  if (code === 'UND_ERR_INVALID_ARG' || err instanceof TypeError) {
    return new AtsError('unexpected_response', `invalid request to ${where}: ${(err as Error).message}`, { cause: err });
  }
  return new AtsError('network', `request to ${where} failed: ${(err as Error | null)?.message ?? String(err)}`, { cause: err });
}

export class AtsHttp {
  private readonly agent: Agent;
  private closing: Promise<void> | undefined;

  constructor(private readonly opts: HttpOptions) {
    this.agent = new Agent({
      connections: opts.connectionsPerOrigin ?? 64,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 60_000,
      headersTimeout: opts.requestTimeoutMs,
      bodyTimeout: opts.requestTimeoutMs,
      connect: {
        timeout: opts.connectTimeoutMs ?? Math.min(opts.requestTimeoutMs, 10_000),
        lookup: guardedLookup(opts.allowPrivateNetworks),
      },
    });
  }

  get allowPrivateNetworks(): boolean {
    return this.opts.allowPrivateNetworks;
  }

  /**
   * Each request gets its own AbortController, aborted when its caller's signal fires or at close()
   * (send() refuses new requests once closing).
   * Handing undici one shared signal instead would add and remove a listener on it per request, and
   * EventTarget does that in time linear in the listeners already there — hundreds in flight made it
   * the dispatcher's top cost after GC. Here each caller signal carries one listener, ever.
   */
  private readonly byCaller = new WeakMap<AbortSignal, Set<AbortController>>();
  private readonly active = new Set<AbortController>();

  private begin(caller: AbortSignal | undefined): { signal: AbortSignal; end(): void } {
    const controller = new AbortController();
    this.active.add(controller);
    let siblings: Set<AbortController> | undefined;
    if (caller) {
      if (caller.aborted) controller.abort(caller.reason);
      siblings = this.byCaller.get(caller);
      if (!siblings) {
        const set = new Set<AbortController>();
        siblings = set;
        this.byCaller.set(caller, set);
        caller.addEventListener('abort', () => {
          for (const c of set) c.abort(caller.reason);
        }, { once: true });
      }
      siblings.add(controller);
    }
    return {
      signal: controller.signal,
      end: () => {
        this.active.delete(controller);
        siblings?.delete(controller);
      },
    };
  }

  async send(req: HttpRequest): Promise<HttpResponse> {
    const url = typeof req.url === 'string' ? new URL(req.url) : req.url;
    if (this.closing) throw new AtsError('network', 'connectors are shut down', { context: { aborted: true } });
    assertUrlAllowed(url, this.opts.allowPrivateNetworks);
    const { signal, end } = this.begin(req.signal);
    const max = req.maxBodyBytes ?? this.opts.maxResponseBytes ?? 5 * 1024 * 1024;
    try {
      const res = await request(url, {
        dispatcher: this.agent,
        method: req.method,
        headers: req.headers,
        body: req.body,
        signal,
      });
      const tooLarge = (): AtsError => {
        // Dropped unread: undici then emits an abort error on the body, which is ours and expected.
        res.body.on('error', () => undefined);
        res.body.destroy();
        return new AtsError('unexpected_response', `response from ${url.origin} exceeds ${max} bytes`, { status: res.statusCode, context: { bodyTooLarge: true } });
      };
      const declared = Number(res.headers['content-length'] ?? Number.NaN);
      let body: Buffer;
      if (Number.isInteger(declared)) {
        // The usual case: a declared length (undici fails a body that does not match it), read in one go —
        // much cheaper than iterating the stream, which costs a promise per chunk.
        if (declared > max) throw tooLarge();
        body = Buffer.from(await res.body.arrayBuffer());
      } else {
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const chunk of res.body) {
          size += (chunk as Buffer).length;
          if (size > max) throw tooLarge();
          chunks.push(chunk as Buffer);
        }
        body = Buffer.concat(chunks);
      }
      return {
        status: res.statusCode,
        headers: res.headers,
        body,
        text: () => body.toString('utf8'),
        json: () => {
          if (body.length === 0) return undefined;
          try {
            return JSON.parse(body.toString('utf8')) as unknown;
          } catch {
            return undefined;
          }
        },
      };
    } catch (err) {
      throw transportError(err, url);
    } finally {
      end();
    }
  }

  /** Abort in-flight requests and close every pool. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const reason = new Error('connectors closing');
      for (const c of this.active) c.abort(reason);
      await this.agent.destroy().catch(() => undefined);
    })();
    return this.closing;
  }
}
