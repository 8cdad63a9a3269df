/**
 * Progress of a redrive on stderr: on a terminal a single line redrawn in place (bar, counts, rate,
 * ETA); otherwise (CI, pipes, log files) a plain line every `intervalMs`.
 */
export interface ProgressCounts {
  scanned: number;
  matched: number;
  produced: number;
  refused: number;
}

export interface Progress {
  update(counts: ProgressCounts): void;
  done(counts: ProgressCounts): void;
}

export interface ProgressOptions {
  stream: { write(s: string): unknown; isTTY?: boolean };
  /** Records the source reads at most (an estimate for S3). */
  total: number;
  /** Produce or dry run, for the wording. */
  dryRun: boolean;
  /** Redraw interval on a TTY (default 200 ms); plain lines every 5 s otherwise. */
  intervalMs?: number;
  now?: () => number;
}

function duration(ms: number): string {
  if (!Number.isFinite(ms)) return '?';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function createProgress(opts: ProgressOptions): Progress {
  const tty = opts.stream.isTTY === true;
  const now = opts.now ?? Date.now;
  const interval = opts.intervalMs ?? (tty ? 200 : 5_000);
  const started = now();
  let last = 0;

  function line(c: ProgressCounts): string {
    const elapsed = now() - started;
    const total = Math.max(opts.total, c.scanned);
    const fraction = total === 0 ? 1 : c.scanned / total;
    const perSecond = elapsed > 0 ? (c.scanned / elapsed) * 1000 : 0;
    const eta = perSecond > 0 ? ((total - c.scanned) / perSecond) * 1000 : Number.POSITIVE_INFINITY;
    const counts = `${c.scanned}/${total} read, ${c.matched} matched, ${opts.dryRun ? 'dry run' : `${c.produced} sent`}, ${c.refused} refused`;
    const timing = `${perSecond.toFixed(1)}/s, ${duration(elapsed)} elapsed, ETA ${fraction >= 1 ? '0s' : duration(eta)}`;
    if (!tty) return `redrive: ${counts} (${(fraction * 100).toFixed(0)} %, ${timing})`;
    const width = 24;
    const filled = Math.round(fraction * width);
    return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)} % ${counts} · ${timing}`;
  }

  return {
    update(c) {
      const t = now();
      if (t - last < interval) return;
      last = t;
      opts.stream.write(tty ? `\r\x1b[2K${line(c)}` : `${line(c)}\n`);
    },
    done(c) {
      opts.stream.write(tty ? `\r\x1b[2K${line(c)}\n` : `${line(c)}\n`);
    },
  };
}
