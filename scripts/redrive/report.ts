/**
 * What an operator reads after a redrive (or a dry run): the counts, a table grouped by company,
 * platform and error code, a sample of the matched records and every refused one.
 */
import { renderFields, renderTable } from '../text-table.ts';
import type { RedriveRun } from './history.ts';
import type { RecordSummary, RedriveReport } from './redrive.ts';

const iso = (ms: number): string => new Date(ms).toISOString();

function recordTable(rows: RecordSummary[]): string {
  return renderTable(rows, [
    { header: 'PARTITION', value: (r) => r.partition },
    { header: 'OFFSET', value: (r) => r.offset },
    { header: 'DEAD-LETTERED', value: (r) => iso(r.deadAt) },
    { header: 'COMPANY', value: (r) => r.companyId },
    { header: 'PLATFORM', value: (r) => r.platform },
    { header: 'ERROR CODE', value: (r) => r.errorCode },
    { header: 'APPLICATION', value: (r) => r.applicationId ?? r.key },
    { header: 'REDRIVES', value: (r) => r.redriveCount },
  ]);
}

export function renderReport(r: RedriveReport): string {
  const out: string[] = [];
  out.push(
    renderFields([
      ['redrive id', r.id],
      ['mode', r.dryRun ? 'DRY RUN (nothing produced)' : `produce to ${r.targetTopic}`],
      ['source', r.source],
      ['filters', Object.keys(r.filters).length ? JSON.stringify(r.filters) : '(none: every dead letter)'],
      ['status', r.status],
      ['read', r.scanned],
      ['matched', r.matched],
      [r.dryRun ? 'would send' : 'sent', r.dryRun ? r.matched - r.refused : r.produced],
      ['refused', r.refused ? `${r.refused} (redriven ${r.maxRedrives} times already: loop guard)` : 0],
      ['not selected', r.skipped],
    ]),
  );
  if (r.error) out.push('', `error: ${r.error}`);
  if (r.undecodableSkipped) {
    out.push('', `${r.undecodableSkipped} record(s) in range did not decode, so --company/--platform/--application-id could not match them.`);
  }
  if (r.undecodable) out.push('', `${r.undecodable} matched record(s) did not decode; the dispatcher will dead-letter them again unless the cause (e.g. a missing schema) is fixed.`);
  if (r.groups.length) {
    out.push(
      '',
      renderTable(r.groups, [
        { header: 'COMPANY', value: (g) => g.companyId },
        { header: 'PLATFORM', value: (g) => g.platform },
        { header: 'ERROR CODE', value: (g) => g.errorCode },
        { header: 'MATCHED', value: (g) => g.count },
      ]),
    );
  }
  if (r.samples.length) out.push('', `Sample (${r.samples.length} of ${r.matched - r.refused}):`, recordTable(r.samples));
  if (r.refusedRecords.length) {
    const more = r.refused - r.refusedRecords.length;
    out.push('', `Refused (ats-redrive-count ≥ ${r.maxRedrives}; fix the cause or raise --max-redrives):`, recordTable(r.refusedRecords));
    if (more > 0) out.push(`… and ${more} more`);
  }
  if (r.matched === 0) out.push('', 'No dead letter matches these filters.');
  return out.join('\n');
}

export function renderHistory(runs: RedriveRun[]): string {
  if (runs.length === 0) return 'No redrive runs recorded.';
  return renderTable(runs, [
    { header: 'ID', value: (r) => r.id },
    { header: 'STARTED', value: (r) => r.startedAt.toISOString() },
    { header: 'OPERATOR', value: (r) => r.operator },
    { header: 'MODE', value: (r) => (r.dryRun ? 'dry-run' : 'redrive') },
    { header: 'SOURCE', value: (r) => r.source },
    { header: 'TARGET', value: (r) => r.targetTopic },
    { header: 'MATCHED', value: (r) => r.matched },
    { header: 'SENT', value: (r) => r.produced },
    { header: 'REFUSED', value: (r) => r.refused },
    { header: 'SKIPPED', value: (r) => r.skipped },
    { header: 'STATUS', value: (r) => r.status },
    { header: 'FILTERS', value: (r) => (Object.keys(r.filters).length ? JSON.stringify(r.filters) : '-') },
    { header: 'ERROR', value: (r) => r.error },
  ]);
}
