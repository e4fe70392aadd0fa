/**
 * The AuditStore contract (src/audit/audit-store.ts), the same tests against every backend: SQLite (the
 * embedded default, a file in a temporary directory) and PostgreSQL (a real server from Debian's
 * `postgresql` package, started here in a temporary data directory on a free loopback port, stopped
 * afterwards: testkit/postgres.ts). Each test gets a database of its own.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { Client } from 'pg';
import pino from 'pino';
import { createActivities } from '../../activities';
import { AuditRecordRefusedError, type AuditRecord, type AuditStore } from '../../src/audit/audit-store';
import { MemoryAuditStore } from '../../src/audit/memory-audit-store';
import { openAuditStore } from '../../src/audit/open-audit-store';
import { PostgresAuditStore } from '../../src/audit/postgres-audit-store';
import { SqliteAuditStore } from '../../src/audit/sqlite-audit-store';
import { auditTarget, type AuditTarget } from '../../src/config';
import { AUDIT_ACTIONS, storableAuditEntry } from '../../src/domain/audit';
import type { DeploymentResults } from '../../src/domain/undo';
import { freePort } from '../../testkit/dev-server';
import { startPostgres, type PostgresServer } from '../../testkit/postgres';

/**
 * A backend under test: a fresh database (its target, as the configuration would name it), and SQL on
 * it from outside the store. The in-memory store (the tests' stand-in for a database) keeps the same
 * contract, but for what only a database has (SQL, several connections, a URL).
 */
interface Backend {
  name: string;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  fresh(): Promise<{ target?: AuditTarget; open?(): Promise<AuditStore>; sql?(statement: string): Promise<void> }>;
}

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'nixfleet-audit-contract-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let files = 0;
const sqlite: Backend = {
  name: 'SQLite',
  setup: async () => undefined,
  teardown: async () => undefined,
  fresh: async () => {
    const file = join(tmp, `audit-${++files}.db`);
    return {
      target: auditTarget({ NIXFLEET_AUDIT_URL: `sqlite:${file}` }),
      sql: async (statement) => {
        const db = new Database(file);
        try {
          db.exec(statement.replaceAll('$table', 'audit').replaceAll('$results', 'deployment_results'));
        } catch (err) {
          // better-sqlite3's error class belongs to the first test file of the process that opened a
          // database (its native part is loaded once): re-thrown here so that jest sees an Error.
          throw new Error((err as Error).message);
        } finally {
          db.close();
        }
      },
    };
  },
};

let server: PostgresServer | undefined;
let databases = 0;
const postgres: Backend = {
  name: 'PostgreSQL',
  setup: async () => {
    server = await startPostgres();
  },
  teardown: async () => {
    await server?.stop();
  },
  fresh: async () => {
    if (!server) throw new Error('no PostgreSQL server');
    const url = await server.createDatabase(`audit_${++databases}`);
    return {
      target: auditTarget({ NIXFLEET_AUDIT_URL: url }),
      sql: async (statement) => {
        const client = new Client({ connectionString: url });
        await client.connect();
        try {
          await client.query(statement.replaceAll('$table', 'nixfleet_audit').replaceAll('$results', 'nixfleet_deployment_results'));
        } finally {
          await client.end();
        }
      },
    };
  },
};

const memory: Backend = {
  name: 'memory (the stand-in)',
  setup: async () => undefined,
  teardown: async () => undefined,
  fresh: async () => {
    const store = new MemoryAuditStore();
    return { open: async () => store };
  },
};

const record = (deploymentId: string, runId: string | undefined, seq: number, over: Partial<AuditRecord> = {}): AuditRecord => ({
  deploymentId,
  ...(runId !== undefined ? { runId } : {}),
  seq,
  repository: 'acme/fleet',
  at: `2026-12-01T10:00:${String(seq).padStart(2, '0')}.000Z`,
  actor: 'olga',
  action: 'revert-and-rollback',
  reverted: 'a'.repeat(40),
  hosts: ['hsb1', 'hsb0'],
  outcome: 'reverted; rolled back: hsb1, hsb0',
  ...over,
});
const results = (deploymentId: string, runId: string, over: Partial<DeploymentResults> = {}): DeploymentResults => ({
  deploymentId,
  runId,
  repository: 'acme/fleet',
  branch: 'main',
  closedAt: '2026-12-01T10:05:00.000Z',
  outcome: 'succeeded',
  mergeSha: 'b'.repeat(40),
  ownMerge: true,
  pullRequest: 7,
  hosts: [
    { name: 'hsb0', kind: 'nixos', state: 'switched', before: { number: 42, storePath: '/nix/store/aaaa-nixos-system-hsb0' }, after: { number: 43, storePath: '/nix/store/bbbb-nixos-system-hsb0' } },
    { name: 'gpc0', kind: 'home-manager', state: 'held' },
  ],
  ...over,
});
const key = (r: AuditRecord): string => `${r.deploymentId}/${r.runId ?? '-'}#${r.seq}`;
const RUN_A = '0193a1b2-0000-7000-8000-00000000000a';
const RUN_B = '0193a1b2-0000-7000-8000-00000000000b';

describe.each([sqlite, postgres, memory])('AuditStore contract: $name', (backend) => {
  let store: AuditStore;
  let fresh: Awaited<ReturnType<Backend['fresh']>>;
  /** SQL on the database from outside the store (not for the in-memory one). */
  const sql = (statement: string): Promise<void> => (fresh.sql as NonNullable<typeof fresh.sql>)(statement);
  const database = backend !== memory;
  const opened: AuditStore[] = [];
  const open = async (): Promise<AuditStore> => {
    const s = fresh.open ? await fresh.open() : await openAuditStore(fresh.target as AuditTarget);
    opened.push(s);
    return s;
  };

  beforeAll(() => backend.setup(), 120_000);
  afterAll(() => backend.teardown());
  beforeEach(async () => {
    fresh = await backend.fresh();
    store = await open();
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
  });

  if (database) test('the URL selects this backend', () => {
    expect(store).toBeInstanceOf(backend === sqlite ? SqliteAuditStore : PostgresAuditStore);
    expect(store.location).not.toMatch(/password/);
  });

  test('when an entry is written again (a retried activity), then it is stored once, as first written', async () => {
    await store.append(record('d1', RUN_A, 1));
    await store.append(record('d1', RUN_A, 1, { actor: 'mallory', outcome: 'rewritten' }));
    await store.append(record('d1', undefined, 1, { action: 'deploy' }));
    await store.append(record('d1', undefined, 1, { actor: 'mallory' }));
    expect(await store.list({ deploymentId: 'd1' })).toEqual([record('d1', RUN_A, 1), record('d1', undefined, 1, { action: 'deploy' })].map((r) => JSON.parse(JSON.stringify(r)) as AuditRecord));
  });

  if (database) test('when anyone changes or deletes entries in the database itself, then the database refuses', async () => {
    await store.append(record('d1', RUN_A, 1));
    await expect(sql("UPDATE $table SET actor = 'mallory'")).rejects.toThrow(/append-only: UPDATE refused/);
    await expect(sql('DELETE FROM $table')).rejects.toThrow(/append-only: DELETE refused/);
    if (backend === postgres) await expect(sql('TRUNCATE $table')).rejects.toThrow(/append-only: TRUNCATE refused/);
    expect((await store.list()).map((r) => r.actor)).toEqual(['olga']);
  });

  test('when an entry is out of bounds, then it is refused (AuditRecordRefusedError naming the field), nothing is written, and the activity fails once, non-retryable', async () => {
    const bad: Array<[AuditRecord, RegExp]> = [
      [record('d1', RUN_A, 0), /seq: /],
      [{ ...record('d1', RUN_A, 1), action: 'rm -rf /' as AuditRecord['action'] }, /action: /],
      [record('d1', RUN_A, 1, { actor: '' }), /actor: /],
      [record('d1', RUN_A, 1, { actor: 'm'.repeat(201) }), /actor: /],
      [record('d1', 'run id; DROP TABLE', 1), /runId: /],
      [record('d1', RUN_A, 1, { outcome: 'a\u0000b' }), /outcome: no NUL/],
      [record('d1', RUN_A, 1, { hosts: ['\ud800'] }), /hosts\.0: not well-formed/],
    ];
    for (const [r, field] of bad) {
      const err = await store.append(r).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AuditRecordRefusedError);
      expect((err as Error).message).toMatch(field);
    }
    const { activities, close } = createActivities({ github: {} as never, ssh: { privateKey: '', knownHosts: '' }, logger: pino({ level: 'silent' }), audit: store });
    try {
      const { deploymentId, runId, seq, repository, ...entry } = record('d1', RUN_A, 1, { actor: '' });
      await expect(activities.recordAudit({ deploymentId, ...(runId ? { runId } : {}), seq, repository, entry })).rejects.toMatchObject({ type: 'AuditRefused', nonRetryable: true, message: expect.stringMatching(/actor: /) });
    } finally {
      await close();
    }
    expect(await store.list()).toEqual([]);
  });

  test('ordering: a deployment run by run (as the runs began), by seq within a run however the writes arrived; the whole log by time, its newest N', async () => {
    // An older entry with no run, then run A written in parallel and out of order, then run B.
    await store.append(record('d1', undefined, 1, { at: '2026-12-01T09:00:00.000Z' }));
    await Promise.all([3, 1, 2].map((seq) => store.append(record('d1', RUN_A, seq))));
    await store.append(record('d2', RUN_A, 1, { at: '2026-12-01T10:00:02.500Z' }));
    for (const seq of [2, 1]) await store.append(record('d1', RUN_B, seq, { at: `2026-12-01T11:00:0${seq}.000Z` }));
    expect((await store.list({ deploymentId: 'd1' })).map(key)).toEqual(['d1/-#1', `d1/${RUN_A}#1`, `d1/${RUN_A}#2`, `d1/${RUN_A}#3`, `d1/${RUN_B}#1`, `d1/${RUN_B}#2`]);
    expect((await store.list({ deploymentId: 'd1', limit: 2 })).map(key)).toEqual(['d1/-#1', `d1/${RUN_A}#1`]);
    expect((await store.list()).map(key)).toEqual(['d1/-#1', `d1/${RUN_A}#1`, `d1/${RUN_A}#2`, `d2/${RUN_A}#1`, `d1/${RUN_A}#3`, `d1/${RUN_B}#1`, `d1/${RUN_B}#2`]);
    expect((await store.list({ limit: 2 })).map(key)).toEqual([`d1/${RUN_B}#1`, `d1/${RUN_B}#2`]);
    expect(await store.list({ deploymentId: 'nobody' })).toEqual([]);
  });

  test('the run key: a reused deployment id keeps every run; an entry without a run is apart from every run', async () => {
    for (const runId of [RUN_A, RUN_B, undefined]) for (const seq of [1, 2]) await store.append(record('deploy-acme.fleet.pr7', runId, seq, { actor: runId ?? 'old' }));
    const all = await store.list({ deploymentId: 'deploy-acme.fleet.pr7' });
    expect(all).toHaveLength(6);
    expect(new Set(all.map((r) => r.runId))).toEqual(new Set([RUN_A, RUN_B, undefined]));
    expect(all.every((r) => r.actor === (r.runId ?? 'old'))).toBe(true);
  });

  if (database) test('another process (a second store on the same database: worker and API) sees every entry; two opening a new database at once both work', async () => {
    await store.append(record('d1', RUN_A, 1));
    const [api, worker2] = await Promise.all([open(), open()]);
    await worker2.append(record('d1', RUN_A, 2));
    expect((await api.list({ deploymentId: 'd1' })).map(key)).toEqual([`d1/${RUN_A}#1`, `d1/${RUN_A}#2`]);
    const { target: other } = await backend.fresh();
    const both = await Promise.all([openAuditStore(other as AuditTarget), openAuditStore(other as AuditTarget)]);
    opened.push(...both);
    await Promise.all(both.map((s, i) => s.append(record('d9', RUN_A, i + 1))));
    expect((await (both[0] as AuditStore).list()).map(key)).toEqual([`d9/${RUN_A}#1`, `d9/${RUN_A}#2`]);
  });

  if (backend === postgres) {
    test('once the table is made, a role with only INSERT and SELECT writes and reads; before, a role that cannot make it is told why', async () => {
      const role = `audit_writer_${databases}`;
      const as = (user: string, url: string) => {
        const u = new URL(url);
        u.username = user;
        return u.toString();
      };
      const url = (fresh.target as { url: string }).url;
      await sql(`CREATE ROLE ${role} LOGIN; GRANT INSERT, SELECT ON $table TO ${role}`);
      const writer = await openAuditStore({ backend: 'postgres', url: as(role, url) });
      opened.push(writer);
      await writer.append(record('d1', RUN_A, 1));
      expect((await writer.list()).map(key)).toEqual([`d1/${RUN_A}#1`]);
      // A database without the table: this role may not make it (PostgreSQL 15: no CREATE on public).
      const { target: empty } = await backend.fresh();
      const refused = await openAuditStore({ backend: 'postgres', url: as(role, (empty as { url: string }).url) }).then(
        () => new Error('opened'),
        (e: unknown) => e as Error,
      );
      expect(refused.message).toMatch(/^audit store postgres:\/\/audit_writer_\d+@127\.0\.0\.1:\d+\/audit_\d+: permission denied for schema public/);
    });
  }

  test('deployment results: written once per run (a retried write changes nothing), read back run by run in the order written, apart from other deployments', async () => {
    await store.appendResults(results('d1', RUN_B));
    await store.appendResults(results('d1', RUN_B, { outcome: 'failed-dismissed', hosts: [] }));
    await store.appendResults(results('d1', RUN_A, { closedAt: '2026-12-02T10:05:00.000Z' }));
    await store.appendResults(results('d2', RUN_A, { ownMerge: false }));
    expect(await store.results('d1')).toEqual([results('d1', RUN_B), results('d1', RUN_A, { closedAt: '2026-12-02T10:05:00.000Z' })]);
    expect(await store.results('d2')).toEqual([results('d2', RUN_A, { ownMerge: false })]);
    expect(await store.results('nobody')).toEqual([]);
    // The entries are a log of their own: results add none.
    expect(await store.list()).toEqual([]);
  });

  test('deployment results out of bounds are refused, naming the field, and nothing is written', async () => {
    const bad: Array<[DeploymentResults, RegExp]> = [
      [results('d1', 'not a run id'), /runId: /],
      [results('d1', RUN_A, { mergeSha: 'main' }), /mergeSha: /],
      [results('d1', RUN_A, { closedAt: 'yesterday' }), /closedAt: /],
      [results('d1', RUN_A, { hosts: [{ name: 'h', kind: 'nixos', state: 'switched', before: { number: -1, storePath: '/nix/store/x' } }] }), /hosts\.0\.before\.number: /],
      [{ ...results('d1', RUN_A), outcome: 'fine' as DeploymentResults['outcome'] }, /outcome: /],
      [{ ...results('d1', RUN_A), extra: 1 } as DeploymentResults, /extra|Unrecognized/],
    ];
    for (const [r, field] of bad) await expect(store.appendResults(r)).rejects.toThrow(field);
    for (const [r] of bad) await expect(store.appendResults(r)).rejects.toBeInstanceOf(AuditRecordRefusedError);
    expect(await store.results('d1')).toEqual([]);
  });

  if (database) test('deployment results: the database refuses changes and deletions', async () => {
    await store.appendResults(results('d1', RUN_A));
    await expect(sql("UPDATE $results SET body = '{}'")).rejects.toThrow(/append-only: UPDATE refused/);
    await expect(sql('DELETE FROM $results')).rejects.toThrow(/append-only: DELETE refused/);
    if (backend === postgres) await expect(sql('TRUNCATE $results')).rejects.toThrow(/append-only: TRUNCATE refused/);
    expect(await store.results('d1')).toEqual([results('d1', RUN_A)]);
  });

  test('the recordDeploymentResults activity writes through the store and is safe to retry; readDeploymentResults answers the latest run', async () => {
    const { activities, close } = createActivities({ github: {} as never, ssh: { privateKey: '', knownHosts: '' }, logger: pino({ level: 'silent' }), audit: store });
    await activities.recordDeploymentResults(results('d1', RUN_A));
    await activities.recordDeploymentResults(results('d1', RUN_A));
    await activities.recordDeploymentResults(results('d1', RUN_B, { outcome: 'succeeded-with-failures' }));
    expect(await activities.readDeploymentResults({ deploymentId: 'd1' })).toEqual(results('d1', RUN_B, { outcome: 'succeeded-with-failures' }));
    expect(await activities.readDeploymentResults({ deploymentId: 'd9' })).toBeNull();
    await expect(activities.recordDeploymentResults(results('d1', 'bad run'))).rejects.toMatchObject({ type: 'AuditRefused', nonRetryable: true });
    await close();
  });

  test('property: any entry the workflow bounds (storableAuditEntry) is taken and read back exactly as written', async () => {
    let seq = 0;
    const anyText = fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 11_000 }), fc.string({ unit: 'grapheme', maxLength: 300 }), fc.anything());
    await fc.assert(
      fc.asyncProperty(
        fc.record({ at: anyText, actor: anyText, action: fc.oneof(fc.constantFrom(...AUDIT_ACTIONS), anyText), reverted: anyText, hosts: fc.oneof(fc.array(anyText, { maxLength: 20 }), anyText), outcome: anyText }),
        async (raw) => {
          seq += 1;
          const entry = storableAuditEntry(raw);
          await store.append({ ...entry, deploymentId: 'deploy-acme.fleet.pr1', runId: RUN_A, seq, repository: 'acme/fleet' });
          const back = (await store.list({ deploymentId: 'deploy-acme.fleet.pr1', limit: 10_000 })).find((r) => r.seq === seq);
          expect(back).toEqual({ ...JSON.parse(JSON.stringify(entry)), deploymentId: 'deploy-acme.fleet.pr1', runId: RUN_A, seq, repository: 'acme/fleet' });
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('selecting the store by URL (src/config.ts auditTarget)', () => {
  test('postgres:// and postgresql:// choose PostgreSQL; sqlite:PATH, sqlite:///abs and NIXFLEET_AUDIT_DB choose SQLite; without either, the state directory', () => {
    expect(auditTarget({ NIXFLEET_AUDIT_URL: 'postgres://u:p@db:5432/audit?sslmode=require' })).toEqual({ backend: 'postgres', url: 'postgres://u:p@db:5432/audit?sslmode=require' });
    expect(auditTarget({ NIXFLEET_AUDIT_URL: 'postgresql://db/audit' })).toEqual({ backend: 'postgres', url: 'postgresql://db/audit' });
    expect(auditTarget({ NIXFLEET_AUDIT_URL: 'sqlite:state/audit.db' })).toEqual({ backend: 'sqlite', file: 'state/audit.db' });
    expect(auditTarget({ NIXFLEET_AUDIT_URL: 'sqlite:///var/lib/nixfleet/audit.db' })).toEqual({ backend: 'sqlite', file: '/var/lib/nixfleet/audit.db' });
    expect(auditTarget({ NIXFLEET_AUDIT_DB: '/var/lib/nixfleet/audit.db' })).toEqual({ backend: 'sqlite', file: '/var/lib/nixfleet/audit.db' });
    expect(auditTarget({ XDG_STATE_HOME: '/state' })).toEqual({ backend: 'sqlite', file: '/state/nixfleet/audit.db' });
    expect(() => auditTarget({ NIXFLEET_AUDIT_URL: 'sqlite://relative' })).toThrow(/absolute path/);
    expect(() => auditTarget({ NIXFLEET_AUDIT_URL: 'sqlite:a.db', NIXFLEET_AUDIT_DB: 'b.db' })).toThrow(/not both/);
  });

  test('when PostgreSQL cannot be reached, then opening says where (without the password), and a write is an ordinary (retryable) failure', async () => {
    const port = await freePort();
    const url = `postgres://nixfleet:s3cret@127.0.0.1:${port}/audit`;
    const err = (await PostgresAuditStore.open(url).then(
      () => new Error('opened a store on a closed port'),
      (e: unknown) => e,
    )) as Error;
    expect(err.message).toContain(`audit store postgres://nixfleet:***@127.0.0.1:${port}/audit`);
    expect(err.message).not.toContain('s3cret');
    const store = new PostgresAuditStore(url);
    const { activities, close } = createActivities({ github: {} as never, ssh: { privateKey: '', knownHosts: '' }, logger: pino({ level: 'silent' }), audit: store });
    try {
      const { deploymentId, runId, seq, repository, ...entry } = record('d1', RUN_A, 1);
      const failure = await activities.recordAudit({ deploymentId, ...(runId ? { runId } : {}), seq, repository, entry }).catch((e: unknown) => e);
      // A connection refused (the driver's own error, passed on as it is): Temporal retries it.
      expect(String((failure as { code?: unknown }).code ?? (failure as Error).message)).toMatch(/ECONNREFUSED/);
      expect(failure).not.toBeInstanceOf(AuditRecordRefusedError);
      expect((failure as { nonRetryable?: boolean }).nonRetryable).toBeUndefined();
    } finally {
      await close();
      await store.close();
    }
  });
});
