/**
 * The demo's live view: per customer delivered / retrying / dead-lettered, and what waits in each
 * retry tier and the DLQ. On a terminal it redraws in place; otherwise it prints a line when the
 * numbers change (at most every 2 s), so CI logs stay readable.
 */
export interface CustomerCounts {
  name: string;
  platform: string;
  published: number;
  delivered: number;
  retrying: number;
  deadLettered: number;
  retried: number;
}

export class LiveView {
  private drawnLines = 0;
  private lastPlain = '';
  private lastPlainAt = 0;

  constructor(
    private readonly out: (line: string) => void,
    private readonly tty: boolean,
  ) {}

  note(message: string): void {
    if (this.tty && this.drawnLines) {
      process.stdout.write(`\x1b[${this.drawnLines}A\x1b[0J`);
      this.drawnLines = 0;
    }
    this.out(`   ▸ ${message}`);
  }

  render(customers: CustomerCounts[], waiting: Record<string, number>): void {
    const tiers = Object.entries(waiting)
      .map(([k, v]) => `${k} ${v}`)
      .join(' · ');
    if (this.tty) {
      const lines = [
        ...customers.map((c) => `   ${c.name.padEnd(14)} ${c.platform.padEnd(10)} delivered ${String(c.delivered).padStart(4)}/${c.published}  retrying ${String(c.retrying).padStart(3)}  dead-lettered ${String(c.deadLettered).padStart(3)}`),
        `   waiting: ${tiers}`,
      ];
      if (this.drawnLines) process.stdout.write(`\x1b[${this.drawnLines}A\x1b[0J`);
      process.stdout.write(`${lines.join('\n')}\n`);
      this.drawnLines = lines.length;
      return;
    }
    const line = `   ${customers.map((c) => `${c.name}: ${c.delivered} delivered, ${c.retrying} retrying, ${c.deadLettered} dead-lettered`).join(' | ')} | waiting ${tiers}`;
    if (line !== this.lastPlain && Date.now() - this.lastPlainAt >= 2_000) {
      this.out(line);
      this.lastPlain = line;
      this.lastPlainAt = Date.now();
    }
  }

  /** Show the final frame (in plain mode as a last line, even if the numbers just changed). */
  done(customers: CustomerCounts[], waiting: Record<string, number>): void {
    if (this.tty) this.render(customers, waiting);
    else {
      this.lastPlainAt = 0;
      this.lastPlain = '';
      this.render(customers, waiting);
    }
    this.drawnLines = 0;
    this.lastPlain = '';
    this.lastPlainAt = 0;
  }
}
