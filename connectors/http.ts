/**
 * The HTTP client every connector uses: one undici Agent (a keep-alive Pool per ATS origin) with
 * connect / headers / body timeouts, the SSRF guard in its DNS lookup, and a shutdown that aborts
 * whatever is still in flight when the process closes. Transport failures come back as
 * AtsError (timeouts → timeout, resets/refusals → network; both retriable); HTTP statuses are the
 * caller's to interpret.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { Agent, util, type Dispatcher, type FormData } from 'undici';
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
   * In-flight requests' abort functions. A caller's signal (the dispatcher hands every delivery the one
   * shutdown signal) gets a single listener, ever, that aborts its own set: EventTarget adds and removes
   * listeners in time linear in those already there, so a listener per request made hundreds in flight
   * the dispatcher's top cost after GC.
   */
  private readonly byCaller = new WeakMap<AbortSignal, Set<Exchange>>();
  private readonly active = new Set<Exchange>();

  private callerSet(caller: AbortSignal): Set<Exchange> {
    let set = this.byCaller.get(caller);
    if (!set) {
      const mine = new Set<Exchange>();
      set = mine;
      this.byCaller.set(caller, mine);
      caller.addEventListener('abort', () => {
        for (const x of mine) x.abort(caller.reason);
      }, { once: true });
    }
    return set;
  }

  /**
   * One request through undici's dispatcher interface, its body gathered into one Buffer. Cheaper than
   * undici's request(), which gives each response a Readable stream, an AsyncResource and an
   * AbortSignal: per delivery (three requests) that machinery was a measurable part of the
   * dispatcher's CPU (issue 17).
   */
  async send(req: HttpRequest): Promise<HttpResponse> {
    const url = typeof req.url === 'string' ? new URL(req.url) : req.url;
    if (this.closing) throw new AtsError('network', 'connectors are shut down', { context: { aborted: true } });
    assertUrlAllowed(url, this.opts.allowPrivateNetworks);
    const max = req.maxBodyBytes ?? this.opts.maxResponseBytes ?? 5 * 1024 * 1024;
    const caller = req.signal;
    const siblings = caller ? this.callerSet(caller) : undefined;
    const exchange = new Exchange(url, max);
    if (caller?.aborted) exchange.abort(caller.reason);
    this.active.add(exchange);
    siblings?.add(exchange);
    try {
      this.agent.dispatch(
        {
          origin: url.origin,
          path: url.search ? `${url.pathname}${url.search}` : url.pathname,
          method: req.method,
          headers: req.headers,
          body: req.body as string | Buffer | null | undefined,
        },
        exchange,
      );
      return await exchange.done;
    } catch (err) {
      throw transportError(err, url);
    } finally {
      this.active.delete(exchange);
      siblings?.delete(exchange);
    }
  }

  /** Abort in-flight requests and close every pool. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const reason = new Error('connectors closing');
      for (const x of this.active) x.abort(reason);
      await this.agent.destroy().catch(() => undefined);
    })();
    return this.closing;
  }
}

/** A response gathered by an Exchange; the text and JSON views decode on demand. */
class GatheredResponse implements HttpResponse {
  constructor(
    readonly status: number,
    readonly headers: IncomingHttpHeaders,
    readonly body: Buffer,
  ) {}

  text(): string {
    return this.body.toString('utf8');
  }

  json(): unknown {
    if (this.body.length === 0) return undefined;
    try {
      return JSON.parse(this.body.toString('utf8')) as unknown;
    } catch {
      return undefined;
    }
  }
}

/**
 * One request's undici handler (the dispatcher's callback interface): collects the body within its
 * cap, settles `done` once. An abort before undici hands the request a socket is kept and applied
 * when it does.
 */
class Exchange implements Dispatcher.DispatchHandler {
  readonly done: Promise<HttpResponse>;
  private resolve!: (res: HttpResponse) => void;
  private reject!: (err: unknown) => void;
  private abortRequest: ((err: Error) => void) | undefined;
  private reason: Error | undefined;
  private status = 0;
  private headers: IncomingHttpHeaders = {};
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(
    private readonly url: URL,
    private readonly max: number,
  ) {
    this.done = new Promise<HttpResponse>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  abort(reason: unknown): void {
    this.reason ??= reason instanceof Error ? reason : Object.assign(new Error('request aborted'), { name: 'AbortError', cause: reason });
    this.abortRequest?.(this.reason);
  }

  onConnect(abort: (err?: Error) => void): void {
    if (this.reason) abort(this.reason);
    else this.abortRequest = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], _resume: () => void, _statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx: the real answer follows
    this.status = statusCode;
    this.headers = util.parseHeaders(rawHeaders) as IncomingHttpHeaders;
    const declared = Number(this.headers['content-length'] ?? Number.NaN);
    if (declared > this.max) throw this.tooLarge(); // undici aborts the request with what a handler throws
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.size += chunk.length;
    if (this.size > this.max) throw this.tooLarge();
    this.chunks.push(chunk);
    return true;
  }

  onComplete(): void {
    const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
    this.chunks = [];
    this.resolve(new GatheredResponse(this.status, this.headers, body));
  }

  onError(err: Error): void {
    this.chunks = [];
    this.reject(err);
  }

  private tooLarge(): AtsError {
    return new AtsError('unexpected_response', `response from ${this.url.origin} exceeds ${this.max} bytes`, { status: this.status, context: { bodyTooLarge: true } });
  }
}
