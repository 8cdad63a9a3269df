/**
 * Protects a customer's ATS: after `failureThreshold` consecutive retriable failures an
 * integration's circuit opens and its messages move to the next tier without a call, until
 * `openMs` has passed; then one half-open probe decides. A 429 is not a failure: it never counts
 * towards opening the circuit, it only cools that integration down for the time the ATS asked for
 * (the dispatcher defers its records meanwhile, without using a try).
 */
export type CircuitState = 'closed' | 'open' | 'half-open';

interface Circuit {
  failures: number;
  openUntil: number;
  probing: boolean;
  coolDownUntil: number;
}

export interface CircuitOptions {
  failureThreshold: number;
  openMs: number;
  now?: () => number;
}

export type Admission = { allowed: true } | { allowed: false; reason: 'circuit_open' | 'rate_limited'; untilMs: number };

export class CircuitBreakers {
  private readonly circuits = new Map<string, Circuit>();
  private readonly now: () => number;

  constructor(private readonly opts: CircuitOptions) {
    this.now = opts.now ?? Date.now;
  }

  private get(id: string): Circuit {
    let c = this.circuits.get(id);
    if (!c) {
      c = { failures: 0, openUntil: 0, probing: false, coolDownUntil: 0 };
      this.circuits.set(id, c);
    }
    return c;
  }

  state(id: string): CircuitState {
    const c = this.circuits.get(id);
    if (!c || c.failures < this.opts.failureThreshold) return 'closed';
    return this.now() < c.openUntil ? 'open' : 'half-open';
  }

  /** May we call this integration's ATS now? A half-open circuit admits one probe at a time. */
  admit(id: string): Admission {
    const c = this.get(id);
    const t = this.now();
    if (t < c.coolDownUntil) return { allowed: false, reason: 'rate_limited', untilMs: c.coolDownUntil };
    if (c.failures < this.opts.failureThreshold) return { allowed: true };
    if (t < c.openUntil) return { allowed: false, reason: 'circuit_open', untilMs: c.openUntil };
    if (c.probing) return { allowed: false, reason: 'circuit_open', untilMs: t + this.opts.openMs };
    c.probing = true;
    return { allowed: true };
  }

  onSuccess(id: string): void {
    const c = this.get(id);
    c.failures = 0;
    c.probing = false;
    c.openUntil = 0;
  }

  /** The ATS throttled us (429): busy, not broken. Cools down; leaves the failure count alone. */
  onThrottled(id: string, retryAfterMs?: number): void {
    const c = this.get(id);
    if (retryAfterMs !== undefined) c.coolDownUntil = Math.max(c.coolDownUntil, this.now() + retryAfterMs);
    // A half-open probe that met a 429 decided nothing: let the next one try.
    c.probing = false;
  }

  /** An admitted call that was not made (e.g. another process holds the application): frees the probe. */
  abandon(id: string): void {
    this.get(id).probing = false;
  }

  /** Only retriable failures count: a 400 says nothing about the ATS's health. */
  onFailure(id: string, retriable: boolean, retryAfterMs?: number): void {
    const c = this.get(id);
    if (retryAfterMs !== undefined) c.coolDownUntil = Math.max(c.coolDownUntil, this.now() + retryAfterMs);
    if (!retriable) {
      c.probing = false;
      return;
    }
    c.failures += 1;
    if (c.failures >= this.opts.failureThreshold) c.openUntil = this.now() + this.opts.openMs;
    c.probing = false;
  }
}
