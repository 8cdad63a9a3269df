/**
 * The dispatcher's access to the delivery log, coalesced: hundreds of concurrent deliveries each
 * need a dedupe lookup and an outcome write, and one query per call would make PostgreSQL round
 * trips the bottleneck. Calls made while earlier statements are in flight are gathered into one
 * statement each (adaptive: a lightly loaded process still sends single-row statements at once).
 * The statements themselves are delivery-store.ts'.
 */
import type { RecordCoordinates } from './delivery-claims.ts';
import { applicationKey, type DeliveryOutcome, type DeliveryRecord, type DeliveryStore } from './delivery-store.ts';

interface Waiter<I, O> {
  input: I;
  resolve(value: O): void;
  reject(err: unknown): void;
}

export class Coalescer<I, O> {
  private queue: Array<Waiter<I, O>> = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(
    private readonly run: (inputs: I[]) => Promise<O[]>,
    private readonly maxBatch: number,
    private readonly maxConcurrent: number,
    /** Inputs with the same key never share a statement. */
    private readonly keyOf?: (input: I) => string,
  ) {}

  call(input: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ input, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.maxConcurrent || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private take(): Array<Waiter<I, O>> {
    if (!this.keyOf) return this.queue.splice(0, this.maxBatch);
    const batch: Array<Waiter<I, O>> = [];
    const rest: Array<Waiter<I, O>> = [];
    const keys = new Set<string>();
    for (const w of this.queue) {
      const key = this.keyOf(w.input);
      if (batch.length < this.maxBatch && !keys.has(key)) {
        keys.add(key);
        batch.push(w);
      } else rest.push(w);
    }
    this.queue = rest;
    return batch;
  }

  private flush(): void {
    while (this.inFlight < this.maxConcurrent && this.queue.length > 0) {
      const batch = this.take();
      this.inFlight++;
      this.run(batch.map((w) => w.input)).then(
        (outputs) => batch.forEach((w, i) => w.resolve(outputs[i]!)),
        (err: unknown) => batch.forEach((w) => w.reject(err)),
      ).finally(() => {
        this.inFlight--;
        this.schedule();
      });
    }
  }
}

export interface DeliveryLog {
  findDelivery(integrationId: string, applicationId: string): Promise<DeliveryRecord | null>;
  /** Was the record routed onward already, and the application's delivery row (one statement, coalesced). */
  check(at: RecordCoordinates, integrationId: string, applicationId: string): Promise<{ routed: boolean; delivery: DeliveryRecord | null }>;
  recordDeliveryOutcome(outcome: DeliveryOutcome): Promise<void>;
}

export function createDeliveryLog(store: Pick<DeliveryStore, 'findDeliveries' | 'findDeliveriesAndRoutes' | 'writeDeliveryOutcomes'>, opts: { maxBatch?: number; maxConcurrent?: number } = {}): DeliveryLog {
  const maxBatch = opts.maxBatch ?? 500;
  const maxConcurrent = opts.maxConcurrent ?? 3;
  const finds = new Coalescer<{ integrationId: string; applicationId: string }, DeliveryRecord | null>(
    async (keys) => {
      const found = new Map((await store.findDeliveries(keys)).map((d) => [applicationKey(d.integrationId, d.applicationId), d]));
      return keys.map((k) => found.get(applicationKey(k.integrationId, k.applicationId)) ?? null);
    },
    maxBatch,
    maxConcurrent,
  );
  const checks = new Coalescer<RecordCoordinates & { integrationId: string; applicationId: string }, { routed: boolean; delivery: DeliveryRecord | null }>(
    (keys) => store.findDeliveriesAndRoutes(keys),
    maxBatch,
    maxConcurrent,
  );
  const writes = new Coalescer<DeliveryOutcome, void>(
    async (outcomes) => {
      await store.writeDeliveryOutcomes(outcomes);
      return outcomes.map(() => undefined);
    },
    maxBatch,
    maxConcurrent,
    (o) => applicationKey(o.integrationId, o.applicationId),
  );
  return {
    findDelivery: (integrationId, applicationId) => finds.call({ integrationId, applicationId }),
    check: (at, integrationId, applicationId) => checks.call({ ...at, integrationId, applicationId }),
    recordDeliveryOutcome: (outcome) => writes.call(outcome),
  };
}
