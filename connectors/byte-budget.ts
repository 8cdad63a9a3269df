/**
 * A budget of bytes held at once, granted in arrival order. The dispatcher's deliveries reserve
 * their resume's size with it: a delivery holds its resume (and, for the JSON vendors, a base64 body
 * of 4/3 its size) from the download until the ATS answers, so at hundreds of deliveries in flight
 * the resumes, not the deliveries, decide the process's memory (`npm run bench` with 0.9 MB resumes
 * at 512 in flight peaked at 1.25 GB RSS, past the dispatcher's 512 Mi container).
 *
 * First come, first served: a large reservation at the head is not overtaken by small ones (it would
 * starve). A reservation larger than the whole budget is cut to it, so it runs alone rather than never.
 */
import { AtsError } from './ats-error.ts';

interface Waiter {
  bytes: number;
  grant(): void;
}

export class ByteBudget {
  private used = 0;
  private readonly queue: Waiter[] = [];

  constructor(readonly capacity: number) {}

  /** Bytes reserved now. */
  get reserved(): number {
    return this.used;
  }

  /** Reservations waiting for bytes. */
  get waiting(): number {
    return this.queue.length;
  }

  /**
   * Reserves `bytes` (at most the capacity), waiting while the budget is spent; resolves with what
   * was reserved, to hand back to release(). An aborted wait rejects like an aborted request.
   */
  acquire(bytes: number, signal?: AbortSignal): Promise<number> {
    if (signal?.aborted) return Promise.reject(aborted());
    const want = Math.min(Math.max(0, bytes), this.capacity);
    if (this.queue.length === 0 && this.fits(want)) {
      this.used += want;
      return Promise.resolve(want);
    }
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.queue.indexOf(waiter);
        if (i >= 0) this.queue.splice(i, 1);
        reject(aborted());
        this.drain(); // the head may have been what held the others back
      };
      const waiter: Waiter = {
        bytes: want,
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve(want);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(waiter);
    });
  }

  release(bytes: number): void {
    this.used -= bytes;
    this.drain();
  }

  private fits(bytes: number): boolean {
    return this.used + bytes <= this.capacity;
  }

  private drain(): void {
    while (this.queue.length > 0 && this.fits(this.queue[0]!.bytes)) {
      const next = this.queue.shift()!;
      this.used += next.bytes;
      next.grant();
    }
  }
}

function aborted(): AtsError {
  return new AtsError('network', 'aborted while waiting for resume memory', { context: { aborted: true } });
}
