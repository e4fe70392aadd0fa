import { DatabaseError, Pool } from 'pg';
import type { DeploymentResults } from '../domain/undo';
import { AuditRecordRefusedError, listLimit, NO_RUN, recordOfRow, resultsOfBody, validAuditRecord, validResults, type AuditListFilter, type AuditRecord, type AuditStore } from './audit-store';

/**
 * The table, its index and the append-only guards. Text compared byte by byte (`COLLATE "C"`, as
 * SQLite does), whatever the database's locale, so both backends order alike. `id`: the order of
 * insertion (a run's place among its deployment's runs); `run_id` '': no run (entries from before runs
 * were keyed). Needs PostgreSQL 14 or later (CREATE OR REPLACE TRIGGER).
 */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS nixfleet_audit (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  deployment_id text COLLATE "C" NOT NULL,
  run_id        text COLLATE "C" NOT NULL DEFAULT '',
  seq           bigint NOT NULL CHECK (seq >= 1),
  repository    text NOT NULL,
  at            text COLLATE "C" NOT NULL,
  actor         text NOT NULL,
  action        text NOT NULL,
  reverted      text,
  hosts         text NOT NULL,
  outcome       text NOT NULL,
  recorded_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (deployment_id, run_id, seq)
);
CREATE INDEX IF NOT EXISTS nixfleet_audit_at ON nixfleet_audit (at);
CREATE OR REPLACE FUNCTION nixfleet_audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the audit log is append-only: % refused', TG_OP;
END $$;
CREATE OR REPLACE TRIGGER nixfleet_audit_no_change BEFORE UPDATE OR DELETE ON nixfleet_audit
  FOR EACH ROW EXECUTE FUNCTION nixfleet_audit_refuse();
CREATE OR REPLACE TRIGGER nixfleet_audit_no_truncate BEFORE TRUNCATE ON nixfleet_audit
  FOR EACH STATEMENT EXECUTE FUNCTION nixfleet_audit_refuse();
CREATE TABLE IF NOT EXISTS nixfleet_deployment_results (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  deployment_id text COLLATE "C" NOT NULL,
  run_id        text COLLATE "C" NOT NULL,
  closed_at     text NOT NULL,
  body          text NOT NULL,
  recorded_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (deployment_id, run_id)
);
CREATE OR REPLACE TRIGGER nixfleet_deployment_results_no_change BEFORE UPDATE OR DELETE ON nixfleet_deployment_results
  FOR EACH ROW EXECUTE FUNCTION nixfleet_audit_refuse();
CREATE OR REPLACE TRIGGER nixfleet_deployment_results_no_truncate BEFORE TRUNCATE ON nixfleet_deployment_results
  FOR EACH STATEMENT EXECUTE FUNCTION nixfleet_audit_refuse();
`;

/** Whether the tables, the index and every guard are all there. */
const SCHEMA_MADE = `
SELECT to_regclass('nixfleet_audit') IS NOT NULL
   AND to_regclass('nixfleet_audit_at') IS NOT NULL
   AND (SELECT count(*) FROM pg_trigger
         WHERE tgrelid = to_regclass('nixfleet_audit') AND tgname IN ('nixfleet_audit_no_change', 'nixfleet_audit_no_truncate')) = 2
   AND to_regclass('nixfleet_deployment_results') IS NOT NULL
   AND (SELECT count(*) FROM pg_trigger
         WHERE tgrelid = to_regclass('nixfleet_deployment_results')
           AND tgname IN ('nixfleet_deployment_results_no_change', 'nixfleet_deployment_results_no_truncate')) = 2 AS made`;

/** The URL without its password, for the logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

/**
 * The audit log in PostgreSQL (the `pg` driver), for workers and APIs on more than one machine. The
 * same contract as the embedded SQLite store: rows are only ever inserted (a key already there is left
 * as first written), triggers refuse UPDATE, DELETE and TRUNCATE, a record out of bounds is refused
 * with AuditRecordRefusedError. The schema is made on first use when it is not there yet, under an
 * advisory lock (a worker and an API starting at once); once made, the role needs only INSERT and
 * SELECT. A lost connection is an ordinary error: the activity retries.
 */
export class PostgresAuditStore implements AuditStore {
  readonly location: string;
  private readonly pool: Pool;
  private ready: Promise<void> | undefined;

  constructor(url: string, opts: { max?: number } = {}) {
    this.location = redactUrl(url);
    this.pool = new Pool({ connectionString: url, max: opts.max ?? 5, connectionTimeoutMillis: 10_000, idleTimeoutMillis: 30_000 });
    // An idle connection the server dropped: the pool discards it and the next query connects again.
    this.pool.on('error', () => undefined);
  }

  /** Connects and makes the schema now, so a wrong URL fails at start rather than at the first entry. */
  static async open(url: string): Promise<PostgresAuditStore> {
    const store = new PostgresAuditStore(url);
    try {
      await store.schema();
    } catch (err) {
      await store.close();
      throw new Error(`audit store ${store.location}: ${err instanceof Error ? err.message : String(err)}`);
    }
    return store;
  }

  private schema(): Promise<void> {
    this.ready ??= (async () => {
      const client = await this.pool.connect();
      try {
        // Made already (the usual case): nothing to change, so a role with only INSERT and SELECT will do.
        const { rows } = await client.query<{ made: boolean }>(SCHEMA_MADE);
        if (rows[0]?.made === true) return;
        await client.query('BEGIN');
        await client.query("SELECT pg_advisory_xact_lock(hashtext('nixfleet_audit schema'))");
        await client.query(SCHEMA);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    })().catch((err: unknown) => {
      this.ready = undefined;
      throw err;
    });
    return this.ready;
  }

  async append(record: AuditRecord): Promise<void> {
    const v = validAuditRecord(record);
    await this.schema();
    try {
      await this.pool.query(
        `INSERT INTO nixfleet_audit (deployment_id, run_id, seq, repository, at, actor, action, reverted, hosts, outcome)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (deployment_id, run_id, seq) DO NOTHING`,
        [v.deploymentId, v.runId ?? NO_RUN, v.seq, v.repository, v.at, v.actor, v.action, v.reverted ?? null, JSON.stringify(v.hosts), v.outcome],
      );
    } catch (err) {
      // Class 22 (data exception) and 23 (integrity): the server refuses this record, again on every retry.
      if (err instanceof DatabaseError && (err.code?.startsWith('22') || err.code?.startsWith('23'))) throw new AuditRecordRefusedError(`${err.code}: ${err.message}`);
      throw err;
    }
  }

  async list(filter: AuditListFilter = {}): Promise<AuditRecord[]> {
    await this.schema();
    const limit = listLimit(filter);
    const { rows } =
      filter.deploymentId === undefined
        ? await this.pool.query('SELECT * FROM nixfleet_audit ORDER BY at DESC, deployment_id DESC, run_id DESC, seq DESC LIMIT $1', [limit])
        : await this.pool.query(
            `SELECT a.* FROM nixfleet_audit a
             JOIN (SELECT run_id, MIN(id) AS first FROM nixfleet_audit WHERE deployment_id = $1 GROUP BY run_id) r ON r.run_id = a.run_id
             WHERE a.deployment_id = $1 ORDER BY r.first, a.seq LIMIT $2`,
            [filter.deploymentId, limit],
          );
    const ordered = filter.deploymentId === undefined ? rows.reverse() : rows;
    return ordered.map(recordOfRow);
  }

  async appendResults(results: DeploymentResults): Promise<void> {
    const v = validResults(results);
    await this.schema();
    try {
      await this.pool.query(
        `INSERT INTO nixfleet_deployment_results (deployment_id, run_id, closed_at, body) VALUES ($1, $2, $3, $4)
         ON CONFLICT (deployment_id, run_id) DO NOTHING`,
        [v.deploymentId, v.runId, v.closedAt, JSON.stringify(v)],
      );
    } catch (err) {
      if (err instanceof DatabaseError && (err.code?.startsWith('22') || err.code?.startsWith('23'))) throw new AuditRecordRefusedError(`${err.code}: ${err.message}`);
      throw err;
    }
  }

  async results(deploymentId: string): Promise<DeploymentResults[]> {
    await this.schema();
    const { rows } = await this.pool.query<{ body: string }>('SELECT body FROM nixfleet_deployment_results WHERE deployment_id = $1 ORDER BY id', [deploymentId]);
    return rows.map((r) => resultsOfBody(r.body));
  }

  async close(): Promise<void> {
    if (!this.pool.ended) await this.pool.end();
  }
}
