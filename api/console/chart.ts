/**
 * The deliveries-per-hour chart as plain server-side SVG: stacked bars (delivered, retrying,
 * dead-lettered) per hour, a labelled y axis and one x label per day. No script, a few KB.
 */
import type { HourBucket } from '../../consumers/dispatcher/delivery-stats.ts';
import { escapeHtml } from './html.ts';

const SERIES = [
  { key: 'delivered', label: 'delivered', color: '#2e8b57' },
  { key: 'retrying', label: 'retrying', color: '#d18a00' },
  { key: 'dead_lettered', label: 'dead-lettered', color: '#c0392b' },
] as const;

/** A round axis maximum ≥ n (1, 2, 5 × 10^k). */
function niceMax(n: number): number {
  if (n <= 4) return 4;
  const p = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 2, 5, 10]) if (m * p >= n) return m * p;
  return 10 * p;
}

export function deliveriesChart(buckets: HourBucket[], title: string): string {
  const W = 860;
  const H = 240;
  const left = 44;
  const right = 10;
  const top = 28;
  const bottom = 36;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const totals = buckets.map((b) => SERIES.reduce((n, s) => n + b.counts[s.key], 0));
  const max = niceMax(Math.max(0, ...totals));
  const bw = plotW / Math.max(1, buckets.length);
  const y = (v: number): number => top + plotH - (v / max) * plotH;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" role="img" aria-labelledby="chart-title">`);
  parts.push(`<title id="chart-title">${escapeHtml(title)}</title>`);
  for (const v of [0, max / 2, max]) {
    parts.push(`<line x1="${left}" x2="${W - right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e1e4ea"/>`);
    parts.push(`<text x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" font-size="11" text-anchor="end" fill="#5b6475">${v}</text>`);
  }
  buckets.forEach((b, i) => {
    let base = 0;
    const x = left + i * bw;
    for (const s of SERIES) {
      const v = b.counts[s.key];
      if (v > 0) {
        const y1 = y(base + v);
        parts.push(`<rect x="${(x + 0.5).toFixed(1)}" y="${y1.toFixed(1)}" width="${Math.max(1, bw - 1).toFixed(1)}" height="${(y(base) - y1).toFixed(1)}" fill="${s.color}"><title>${escapeHtml(`${b.hour.toISOString().slice(0, 13)}:00Z ${s.label}: ${v}`)}</title></rect>`);
      }
      base += v;
    }
    if (b.hour.getUTCHours() === 0) {
      parts.push(`<line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${top + plotH}" y2="${top + plotH + 4}" stroke="#5b6475"/>`);
      parts.push(`<text x="${(x + 2).toFixed(1)}" y="${top + plotH + 16}" font-size="11" fill="#5b6475">${b.hour.toISOString().slice(5, 10)}</text>`);
    }
  });
  parts.push(`<line x1="${left}" x2="${W - right}" y1="${top + plotH}" y2="${top + plotH}" stroke="#5b6475"/>`);
  SERIES.forEach((s, i) => {
    const x = left + i * 120;
    parts.push(`<rect x="${x}" y="8" width="10" height="10" fill="${s.color}"/><text x="${x + 14}" y="17" font-size="12" fill="#1d2330">${s.label}</text>`);
  });
  parts.push(`<text x="${W - right}" y="${H - 4}" font-size="11" text-anchor="end" fill="#5b6475">deliveries per hour, UTC, last ${Math.round(buckets.length / 24)} days</text>`);
  parts.push('</svg>');
  return parts.join('');
}
