import { runMain } from '../lib/cli.ts';
import { redactUrl } from '../lib/config.ts';
import { migrate } from '../db/migrate.ts';

await runMain({
  name: 'db:migrate',
  usage: `Usage: npm run db:migrate

Creates the database named in DATABASE_URL if it is missing and applies every pending migration
in db/migrations (idempotent; safe to run from several processes at once).`,
  options: {},
  async run({ config }) {
    const { created, applied } = await migrate(config.database.url);
    if (created) console.log(`created database ${redactUrl(config.database.url)}`);
    console.log(applied.length ? `applied ${applied.join(', ')}` : 'database schema is up to date');
  },
});
