import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { AuditRecordRefusedError, type AuditRecord } from '../../src/audit/audit-store';
import { SqliteAuditStore } from '../../src/audit/sqlite-audit-store';
import { auditDbPath } from '../../src/config';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'nixfleet-audit-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const entry = (deploymentId: string, seq: number, over: Partial<AuditRecord> = {}): AuditRecord => ({
  deploymentId,
  seq,
  repository: 'acme/fleet',
  at: `2026-01-01T00:00:0${seq}.000Z`,
  actor: 'alice',
  action: 'revert-and-rollback',
  reverted: 'a'.repeat(40),
  hosts: ['hsb1', 'hsb0'],
  outcome: 'reverted; rolled back: hsb1, hsb0',
  ...over,
});

test('when an entry is appended twice (a retried activity), then it is stored once, as first written', async () => {
  const store = new SqliteAuditStore(join(dir, 'nested', 'audit.db'));
  await store.append(entry('d1', 1));
  await store.append(entry('d1', 1, { actor: 'mallory', outcome: 'rewritten' }));
  await store.append(entry('d1', 2, { action: 'dismiss', reverted: undefined, hosts: [] }));
  await store.append(entry('d2', 1, { action: 'deploy' }));
  expect(await store.list({ deploymentId: 'd1' })).toEqual([entry('d1', 1), entry('d1', 2, { action: 'dismiss', reverted: undefined, hosts: [] })].map((e) => JSON.parse(JSON.stringify(e)) as AuditRecord));
  expect((await store.list()).map((e) => `${e.deploymentId}#${e.seq}`)).toEqual(['d1#1', 'd2#1', 'd1#2']);
  expect((await store.list({ limit: 1 })).map((e) => `${e.deploymentId}#${e.seq}`)).toEqual(['d1#2']);
  await store.close();
});

test('when anyone tries to change or delete an entry in the file, then SQLite refuses', async () => {
  const file = join(dir, 'audit.db');
  const store = new SqliteAuditStore(file);
  await store.append(entry('d1', 1));
  const db = new Database(file);
  expect(() => db.exec("UPDATE audit SET actor = 'mallory'")).toThrow(/append-only: UPDATE refused/);
  expect(() => db.exec('DELETE FROM audit')).toThrow(/append-only: DELETE refused/);
  db.close();
  expect((await store.list())[0]?.actor).toBe('alice');
  await store.close();
});

test('when a record is malformed, then append refuses it naming the field', async () => {
  const store = new SqliteAuditStore(join(dir, 'audit.db'));
  await expect(store.append(entry('d1', 0))).rejects.toThrow(/^audit record refused: seq: /);
  // A typed refusal: recordAudit makes it a non-retryable AuditRefused failure.
  await expect(store.append(entry('d1', 0))).rejects.toThrow(AuditRecordRefusedError);
  await expect(store.append({ ...entry('d1', 1), action: 'explode' as AuditRecord['action'] })).rejects.toThrow(/action: /);
  await expect(store.append({ ...entry('d1', 1), actor: '' })).rejects.toThrow(/actor: /);
  expect(await store.list()).toEqual([]);
  await store.close();
});

test('where the database lives: NIXFLEET_AUDIT_DB, else $XDG_STATE_HOME/nixfleet/audit.db, else ~/.local/state/nixfleet/audit.db', () => {
  expect(auditDbPath({ NIXFLEET_AUDIT_DB: '/var/lib/nixfleet/audit.db' })).toBe('/var/lib/nixfleet/audit.db');
  expect(auditDbPath({ XDG_STATE_HOME: '/state' })).toBe('/state/nixfleet/audit.db');
  expect(auditDbPath({})).toMatch(/\/\.local\/state\/nixfleet\/audit\.db$/);
});
