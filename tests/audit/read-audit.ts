/**
 * Run as its own process by tests/audit: opens the audit database cold and prints every entry as JSON,
 * then shows that the file refuses an UPDATE and a DELETE.
 *   node --require tsx/cjs tests/audit/read-audit.ts FILE
 */
import Database from 'better-sqlite3';
import { SqliteAuditStore } from '../../src/audit/sqlite-audit-store';

async function main(): Promise<void> {
  const file = process.argv[2];
  if (!file) throw new Error('usage: read-audit.ts FILE');
  const store = new SqliteAuditStore(file);
  const entries = await store.list();
  await store.close();
  const db = new Database(file);
  const refused: string[] = [];
  for (const sql of ["UPDATE audit SET actor = 'mallory'", 'DELETE FROM audit']) {
    try {
      db.exec(sql);
    } catch (err) {
      refused.push((err as Error).message);
    }
  }
  db.close();
  process.stdout.write(JSON.stringify({ pid: process.pid, entries, refused }));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
