/**
 * The README's error-code table, generated from lib/error-codes.ts (test/readme.test.ts keeps the
 * two equal). `npm run docs:errors` rewrites the table in README.md between its markers.
 */
import { ALL_ERROR_CODES, ERROR_CODES } from '../lib/error-codes.ts';
import { regenerateReadmeSection } from './config-table.ts';

/** A table cell: a pipe inside the text would start a new column. */
const cell = (text: string): string => text.replace(/\|/g, '\\|');

export function errorTableMarkdown(): string {
  const rows = ALL_ERROR_CODES.map((code) => {
    const c = ERROR_CODES[code];
    return `| \`${code}\` | ${c.retriable ? 'yes' : 'no'} | ${c.raisedBy.join(', ')} | ${cell(c.meaning)} | ${cell(c.action)} |`;
  });
  return ['| Code | Retriable | Raised by | Meaning (typical cause) | What to do |', '|---|---|---|---|---|', ...rows].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) regenerateReadmeSection('error-table', errorTableMarkdown, 'error-code table');
