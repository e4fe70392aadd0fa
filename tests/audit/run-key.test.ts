/**
 * Issue 12 bug 4 (the store's side): deployment ids are reused once a run has closed
 * (`deploy-<owner>.<repo>.pr<N>`, src/domain/ids.ts), so a second run of the same deployment writes
 * seq 1, 2, … again. Keyed by (deployment, seq), the store kept the first run's entries and silently
 * dropped the second's. Keyed by (deployment, run, seq), both runs are kept, in order, each with its run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import { createActivities } from '../../activities';
import type { AuditRecord } from '../../src/audit/audit-store';
import { SQLITE_SCHEMA_VERSION, SqliteAuditStore } from '../../src/audit/sqlite-audit-store';
import type { AuditEntry } from '../../src/domain/deployment';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'nixfleet-audit-runs-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const DEPLOYMENT = 'deploy-acme.fleet.pr7';
const RUN_1 = '0193a1b2-0000-7000-8000-000000000001';
const RUN_2 = '0193a1b2-0000-7000-8000-000000000002';

const entry = (at: string, actor: string, action: AuditEntry['action'], outcome: string): AuditEntry => ({ at, actor, action, hosts: [], outcome });
/** Two runs of one deployment id: the first dismissed, the second (after it closed) reverted. */
const run1 = [entry('2026-12-01T10:00:00.000Z', 'olga', 'deploy', 'started'), entry('2026-12-01T10:00:01.000Z', 'olga', 'merge', 'merged'), entry('2026-12-01T10:05:00.000Z', 'olga', 'dismiss', 'dismissed')];
const run2 = [entry('2026-12-01T11:00:00.000Z', 'peter', 'deploy', 'started again'), entry('2026-12-01T11:00:01.000Z', 'peter', 'merge', 'merged again'), entry('2026-12-01T11:09:00.000Z', 'peter', 'revert', 'reverted in abc')];

const summary = (r: AuditRecord): string => `${r.runId ?? '-'} #${r.seq} ${r.actor} ${r.action}`;
const expected = [...run1.map((e, i) => `${RUN_1} #${i + 1} ${e.actor} ${e.action}`), ...run2.map((e, i) => `${RUN_2} #${i + 1} ${e.actor} ${e.action}`)];

test('when a deployment id is reused by a second run, then the store keeps both runs, in order, each with its run', async () => {
  const store = new SqliteAuditStore(join(dir, 'audit.db'));
  for (const [runId, entries] of [[RUN_1, run1], [RUN_2, run2]] as const) {
    for (const [i, e] of entries.entries()) await store.append({ ...e, deploymentId: DEPLOYMENT, runId, seq: i + 1, repository: 'acme/fleet' });
  }
  expect((await store.list({ deploymentId: DEPLOYMENT })).map(summary)).toEqual(expected);
  expect((await store.list()).map(summary)).toEqual(expected);
  await store.close();
});

test('when the recordAudit activity is given the run, then a second run of the deployment loses nothing', async () => {
  const store = new SqliteAuditStore(join(dir, 'audit.db'));
  const { activities, close } = createActivities({ github: {} as never, ssh: { privateKey: '', knownHosts: '' }, logger: pino({ level: 'silent' }), audit: store });
  try {
    for (const [runId, entries] of [[RUN_1, run1], [RUN_2, run2]] as const) {
      // The workflow writes a run's entries in parallel; a retried one arrives twice.
      await Promise.all(entries.map((e, i) => activities.recordAudit({ deploymentId: DEPLOYMENT, runId, seq: i + 1, repository: 'acme/fleet', entry: e })));
      await activities.recordAudit({ deploymentId: DEPLOYMENT, runId, seq: 1, repository: 'acme/fleet', entry: entries[0] as AuditEntry });
    }
    expect((await store.list({ deploymentId: DEPLOYMENT })).map(summary)).toEqual(expected);
  } finally {
    await close();
    await store.close();
  }
});

/** The schema as it was before runs were keyed (src/audit/sqlite-audit-store.ts at d2666f5), word for word. */
const V1_SCHEMA = `
CREATE TABLE IF NOT EXISTS audit (
  deployment_id TEXT    NOT NULL,
  seq           INTEGER NOT NULL CHECK (seq >= 1),
  repository    TEXT    NOT NULL,
  at            TEXT    NOT NULL,
  actor         TEXT    NOT NULL,
  action        TEXT    NOT NULL,
  reverted      TEXT,
  hosts         TEXT    NOT NULL,
  outcome       TEXT    NOT NULL,
  recorded_at   TEXT    NOT NULL,
  PRIMARY KEY (deployment_id, seq)
);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: DELETE refused'); END;
`;

test('when a database written before runs were keyed is opened, then its entries are kept (with no run), in order, and it keeps working', async () => {
  const file = join(dir, 'old.db');
  const old = new Database(file);
  old.pragma('journal_mode = WAL');
  old.exec(V1_SCHEMA);
  const insert = old.prepare(
    'INSERT OR IGNORE INTO audit (deployment_id, seq, repository, at, actor, action, reverted, hosts, outcome, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
  );
  insert.run(DEPLOYMENT, 1, 'acme/fleet', run1[0]?.at, 'olga', 'deploy', null, '["h1","h2"]', 'started', '2026-12-01T10:00:00.100Z');
  insert.run(DEPLOYMENT, 2, 'acme/fleet', run1[1]?.at, 'olga', 'merge', null, '[]', 'merged', '2026-12-01T10:00:01.100Z');
  insert.run(DEPLOYMENT, 3, 'acme/fleet', run1[2]?.at, 'olga', 'revert', 'a'.repeat(40), '[]', 'reverted', '2026-12-01T10:05:00.100Z');
  insert.run('deploy-acme.fleet.pr8', 1, 'acme/fleet', '2026-12-01T09:00:00.000Z', 'peter', 'deploy', null, '["h1"]', 'started', '2026-12-01T09:00:00.100Z');
  old.close();

  const store = new SqliteAuditStore(file);
  const before = await store.list({ deploymentId: DEPLOYMENT });
  expect(before.map(summary)).toEqual(['- #1 olga deploy', '- #2 olga merge', '- #3 olga revert']);
  expect(before[0]).toEqual({ deploymentId: DEPLOYMENT, seq: 1, repository: 'acme/fleet', at: run1[0]?.at, actor: 'olga', action: 'deploy', hosts: ['h1', 'h2'], outcome: 'started' });
  expect(before[2]?.reverted).toBe('a'.repeat(40));
  // A run still going on an old history (no runId) retries its seq 3: the entry already there stands.
  await store.append({ ...entry('2026-12-01T10:06:00.000Z', 'mallory', 'dismiss', 'rewritten'), deploymentId: DEPLOYMENT, seq: 3, repository: 'acme/fleet' });
  // …and writes its seq 4 under the old key; a new run of the same id writes its own.
  await store.append({ ...entry('2026-12-01T10:07:00.000Z', 'olga', 'dismiss', 'dismissed'), deploymentId: DEPLOYMENT, seq: 4, repository: 'acme/fleet' });
  for (const [i, e] of run2.entries()) await store.append({ ...e, deploymentId: DEPLOYMENT, runId: RUN_2, seq: i + 1, repository: 'acme/fleet' });
  expect((await store.list({ deploymentId: DEPLOYMENT })).map(summary)).toEqual([
    '- #1 olga deploy',
    '- #2 olga merge',
    '- #3 olga revert',
    '- #4 olga dismiss',
    `${RUN_2} #1 peter deploy`,
    `${RUN_2} #2 peter merge`,
    `${RUN_2} #3 peter revert`,
  ]);
  expect((await store.list({ deploymentId: 'deploy-acme.fleet.pr8' })).map(summary)).toEqual(['- #1 peter deploy']);
  await store.close();

  // Still append-only, migrated once: opening it again changes nothing.
  const db = new Database(file);
  expect(db.pragma('user_version', { simple: true })).toBe(SQLITE_SCHEMA_VERSION);
  expect(() => db.exec("UPDATE audit SET actor = 'mallory'")).toThrow(/append-only: UPDATE refused/);
  expect(() => db.exec('DELETE FROM audit')).toThrow(/append-only: DELETE refused/);
  expect(db.prepare("SELECT name FROM sqlite_master ORDER BY name").all()).toEqual([
    { name: 'audit' },
    { name: 'audit_at' },
    { name: 'audit_no_delete' },
    { name: 'audit_no_update' },
    { name: 'deployment_results' },
    { name: 'deployment_results_no_delete' },
    { name: 'deployment_results_no_update' },
    { name: 'sqlite_autoindex_audit_1' },
    { name: 'sqlite_autoindex_deployment_results_1' },
  ]); // the old table is gone; the results table (schema 3) is made beside it
  db.close();
  const again = new SqliteAuditStore(file);
  expect(await again.list({ deploymentId: DEPLOYMENT })).toHaveLength(7);
  expect(await again.list()).toHaveLength(8);
  await again.close();
});
