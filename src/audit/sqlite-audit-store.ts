import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { DeploymentResults } from '../domain/undo';
import { listLimit, NO_RUN, recordOfRow, resultsOfBody, validAuditRecord, validResults, type AuditListFilter, type AuditRecord, type AuditStore } from './audit-store';

/**
 * The schema's version, in SQLite's `user_version`: 0/1 keyed by (deployment, seq), 2 by (deployment,
 * run, seq), 3 with the deployments' results beside the entries.
 */
export const SQLITE_SCHEMA_VERSION = 3;

/** `id`: the order of insertion (a run's place among the deployment's runs). `run_id` '' : no run (older entries). */
const TABLE = `
CREATE TABLE audit (
  id            INTEGER PRIMARY KEY,
  deployment_id TEXT    NOT NULL,
  run_id        TEXT    NOT NULL DEFAULT '',
  seq           INTEGER NOT NULL CHECK (seq >= 1),
  repository    TEXT    NOT NULL,
  at            TEXT    NOT NULL,
  actor         TEXT    NOT NULL,
  action        TEXT    NOT NULL,
  reverted      TEXT,
  hosts         TEXT    NOT NULL,
  outcome       TEXT    NOT NULL,
  recorded_at   TEXT    NOT NULL,
  UNIQUE (deployment_id, run_id, seq)
);`;

const GUARDS = `
CREATE TABLE IF NOT EXISTS deployment_results (
  id            INTEGER PRIMARY KEY,
  deployment_id TEXT NOT NULL,
  run_id        TEXT NOT NULL,
  closed_at     TEXT NOT NULL,
  body          TEXT NOT NULL,
  recorded_at   TEXT NOT NULL,
  UNIQUE (deployment_id, run_id)
);
CREATE TRIGGER IF NOT EXISTS deployment_results_no_update BEFORE UPDATE ON deployment_results
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS deployment_results_no_delete BEFORE DELETE ON deployment_results
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: DELETE refused'); END;
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: DELETE refused'); END;
`;

/**
 * Brings any version of the file to SQLITE_SCHEMA_VERSION, in one IMMEDIATE transaction (a worker and
 * an API opening the same old file at once: one migrates, the other then finds it done). Version 1
 * (keyed by (deployment_id, seq)) is copied row by row, in its order, into the new table with no run;
 * the old table goes only once the copy is in, and only the append-only triggers are dropped with it.
 */
function migrate(db: Database.Database): void {
  db.transaction(() => {
    const columns = (db.prepare("SELECT name FROM pragma_table_info('audit')").all() as Array<{ name: string }>).map((c) => c.name);
    if (columns.length === 0) {
      db.exec(TABLE);
    } else if (!columns.includes('run_id')) {
      db.exec(`
        DROP TRIGGER IF EXISTS audit_no_update;
        DROP TRIGGER IF EXISTS audit_no_delete;
        DROP INDEX IF EXISTS audit_at;
        ALTER TABLE audit RENAME TO audit_v1;
        ${TABLE}
        INSERT INTO audit (deployment_id, run_id, seq, repository, at, actor, action, reverted, hosts, outcome, recorded_at)
          SELECT deployment_id, '${NO_RUN}', seq, repository, at, actor, action, reverted, hosts, outcome, recorded_at FROM audit_v1 ORDER BY rowid;
        DROP TABLE audit_v1;
      `);
    }
    db.exec(GUARDS);
    db.pragma(`user_version = ${SQLITE_SCHEMA_VERSION}`);
  }).immediate();
}

/**
 * The embedded audit log (the default; where: src/config.ts `auditTarget`): one SQLite file (better-sqlite3, WAL so the worker writes while the API
 * reads). Append-only: rows are only ever inserted (a second write of a key already there does
 * nothing, so a retried `recordAudit` activity never duplicates an entry), and triggers refuse UPDATE
 * and DELETE. A file from before runs were keyed is migrated when opened, its entries kept (with no run).
 */
export class SqliteAuditStore implements AuditStore {
  private readonly db: Database.Database;
  private readonly insert: Database.Statement;
  private readonly insertResults: Database.Statement;

  constructor(readonly file: string) {
    if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    migrate(this.db);
    // Only the key's conflict is ignored (not OR IGNORE: that would swallow a CHECK or NOT NULL too).
    this.insert = this.db.prepare(
      `INSERT INTO audit (deployment_id, run_id, seq, repository, at, actor, action, reverted, hosts, outcome, recorded_at)
       VALUES (@deploymentId, @runId, @seq, @repository, @at, @actor, @action, @reverted, @hosts, @outcome, @recordedAt)
       ON CONFLICT (deployment_id, run_id, seq) DO NOTHING`,
    );
    this.insertResults = this.db.prepare(
      `INSERT INTO deployment_results (deployment_id, run_id, closed_at, body, recorded_at)
       VALUES (@deploymentId, @runId, @closedAt, @body, @recordedAt)
       ON CONFLICT (deployment_id, run_id) DO NOTHING`,
    );
  }

  get location(): string {
    return this.file;
  }

  async append(record: AuditRecord): Promise<void> {
    const v = validAuditRecord(record);
    this.insert.run({ ...v, runId: v.runId ?? NO_RUN, reverted: v.reverted ?? null, hosts: JSON.stringify(v.hosts), recordedAt: new Date().toISOString() });
  }

  async list(filter: AuditListFilter = {}): Promise<AuditRecord[]> {
    const limit = listLimit(filter);
    const rows =
      filter.deploymentId === undefined
        ? this.db.prepare('SELECT * FROM audit ORDER BY at DESC, deployment_id DESC, run_id DESC, seq DESC LIMIT ?').all(limit).reverse()
        : this.db
            .prepare(
              `SELECT a.* FROM audit a
               JOIN (SELECT run_id, MIN(id) AS first FROM audit WHERE deployment_id = ? GROUP BY run_id) r ON r.run_id = a.run_id
               WHERE a.deployment_id = ? ORDER BY r.first, a.seq LIMIT ?`,
            )
            .all(filter.deploymentId, filter.deploymentId, limit);
    return rows.map(recordOfRow);
  }

  async appendResults(results: DeploymentResults): Promise<void> {
    const v = validResults(results);
    this.insertResults.run({ deploymentId: v.deploymentId, runId: v.runId, closedAt: v.closedAt, body: JSON.stringify(v), recordedAt: new Date().toISOString() });
  }

  async results(deploymentId: string): Promise<DeploymentResults[]> {
    const rows = this.db.prepare('SELECT body FROM deployment_results WHERE deployment_id = ? ORDER BY id').all(deploymentId) as Array<{ body: string }>;
    return rows.map((r) => resultsOfBody(r.body));
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
