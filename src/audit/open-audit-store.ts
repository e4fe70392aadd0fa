import type { AuditTarget } from '../config';
import type { AuditStore } from './audit-store';
import { PostgresAuditStore } from './postgres-audit-store';
import { SqliteAuditStore } from './sqlite-audit-store';

/** One adapter per backend, by the name the configuration gives (src/config.ts `auditTarget`). */
const BACKENDS: { [B in AuditTarget['backend']]: (target: Extract<AuditTarget, { backend: B }>) => Promise<AuditStore> } = {
  sqlite: async ({ file }) => new SqliteAuditStore(file),
  postgres: async ({ url }) => PostgresAuditStore.open(url),
};

/** Opens the audit store the configuration names: connected, its schema made or migrated. */
export function openAuditStore(target: AuditTarget): Promise<AuditStore> {
  return (BACKENDS[target.backend] as (t: AuditTarget) => Promise<AuditStore>)(target);
}
