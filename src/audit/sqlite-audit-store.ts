import { mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { z } from 'zod';
import { AUDIT_ACTIONS, AUDIT_LIMITS } from '../domain/audit';
import { AuditRecordRefusedError, type AuditRecord, type AuditStore } from './audit-store';

/**
 * Where the embedded audit log lives: `NIXFLEET_AUDIT_DB`, or `$XDG_STATE_HOME/nixfleet/audit.db`
 * (`~/.local/state/nixfleet/audit.db` when XDG_STATE_HOME is unset). The worker writes it, the API
 * reads it; both must see the same file (one machine, or one shared volume).
 */
export const AuditEnv = z.object({
  NIXFLEET_AUDIT_DB: z
    .string()
    .min(1, 'a file path for the audit database')
    .refine((s) => !s.includes('\0'), 'no NUL characters')
    .optional(),
  XDG_STATE_HOME: z.string().optional(),
});
export type AuditEnv = z.infer<typeof AuditEnv>;

export function auditDbPath(env: AuditEnv): string {
  if (env.NIXFLEET_AUDIT_DB) return env.NIXFLEET_AUDIT_DB;
  const state = env.XDG_STATE_HOME && env.XDG_STATE_HOME.startsWith('/') ? env.XDG_STATE_HOME : join(homedir(), '.local', 'state');
  return join(state, 'nixfleet', 'audit.db');
}

const SCHEMA = `
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

/** What a stored row must look like to come back out: a corrupted row is an error, not a silent gap. */
const Row = z.object({
  deployment_id: z.string(),
  seq: z.number().int(),
  repository: z.string(),
  at: z.string(),
  actor: z.string(),
  action: z.enum(AUDIT_ACTIONS),
  reverted: z.string().nullable(),
  hosts: z.string().transform((s, ctx) => {
    try {
      return z.array(z.string()).parse(JSON.parse(s));
    } catch {
      ctx.addIssue({ code: 'custom', message: 'hosts: not a JSON array of host names' });
      return z.NEVER;
    }
  }),
  outcome: z.string(),
});

/** What the store takes: the limits the workflow bounds every entry to (src/domain/audit.ts). */
const RecordInput = z.object({
  deploymentId: z.string().min(1).max(AUDIT_LIMITS.deploymentId),
  seq: z.number().int().min(1),
  repository: z.string().min(1).max(AUDIT_LIMITS.repository),
  at: z.string().min(1).max(AUDIT_LIMITS.at),
  actor: z.string().min(1).max(AUDIT_LIMITS.actor),
  action: z.enum(AUDIT_ACTIONS),
  reverted: z.string().max(AUDIT_LIMITS.reverted).optional(),
  hosts: z.array(z.string().max(AUDIT_LIMITS.hostName)),
  outcome: z.string().max(AUDIT_LIMITS.outcome),
});

/**
 * The embedded audit log: one SQLite file (better-sqlite3, WAL so the worker writes while the API
 * reads). Append-only: rows are only ever inserted (`INSERT OR IGNORE` on (deployment_id, seq), so a
 * retried `recordAudit` activity never duplicates an entry), and triggers refuse UPDATE and DELETE.
 */
export class SqliteAuditStore implements AuditStore {
  private readonly db: Database.Database;
  private readonly insert: Database.Statement;

  constructor(readonly file: string) {
    if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    this.insert = this.db.prepare(
      `INSERT OR IGNORE INTO audit (deployment_id, seq, repository, at, actor, action, reverted, hosts, outcome, recorded_at)
       VALUES (@deploymentId, @seq, @repository, @at, @actor, @action, @reverted, @hosts, @outcome, @recordedAt)`,
    );
  }

  static open(env: AuditEnv = AuditEnv.parse(process.env)): SqliteAuditStore {
    return new SqliteAuditStore(auditDbPath(env));
  }

  async append(record: AuditRecord): Promise<void> {
    const r = RecordInput.safeParse(record);
    if (!r.success) throw new AuditRecordRefusedError(r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
    const v = r.data;
    this.insert.run({ ...v, reverted: v.reverted ?? null, hosts: JSON.stringify(v.hosts), recordedAt: new Date().toISOString() });
  }

  async list(filter: { deploymentId?: string; limit?: number } = {}): Promise<AuditRecord[]> {
    const limit = Math.max(1, Math.min(filter.limit ?? 1000, 10_000));
    const rows =
      filter.deploymentId === undefined
        ? this.db.prepare('SELECT * FROM audit ORDER BY at DESC, deployment_id DESC, seq DESC LIMIT ?').all(limit).reverse()
        : this.db.prepare('SELECT * FROM audit WHERE deployment_id = ? ORDER BY seq LIMIT ?').all(filter.deploymentId, limit);
    return rows.map((raw) => {
      const row = Row.parse(raw);
      return {
        deploymentId: row.deployment_id,
        seq: row.seq,
        repository: row.repository,
        at: row.at,
        actor: row.actor,
        action: row.action,
        ...(row.reverted !== null ? { reverted: row.reverted } : {}),
        hosts: row.hosts,
        outcome: row.outcome,
      };
    });
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
