/**
 * Where the undo's fleet file comes from (src/service/undo.ts): the request's `fleet` (JSON), its
 * `fleetText` (YAML or JSON, as the dashboard reads a file), or the API's own (NIXFLEET_FLEETS, the
 * webhook's fleets) for the deployment's repository and branch. Unit test: the Temporal client is a
 * recorder of the start it is asked for (the whole undo runs on the real stack in undo.test.ts,
 * undo-recheck.test.ts and tests/dashboard/undo.test.ts).
 */
import type { Client } from '@temporalio/client';
import { MemoryAuditStore } from '../../src/audit/memory-audit-store';
import type { UndoInput } from '../../src/domain/undo';
import { FleetFile, InputError, parseWith } from '../../src/schemas/fleet.schema';
import { UndoService } from '../../src/service/undo';

const fleet = (owner: string, host: string) => ({ repository: { owner, name: 'fleet' }, hosts: [{ name: host, address: '10.0.0.1', kind: 'nixos' }] });
const g = (n: number) => ({ number: n, storePath: `/nix/store/${'a'.repeat(32)}-sys-${n}` });

async function service(known: unknown[]): Promise<{ undo: UndoService; started: UndoInput[] }> {
  const audit = new MemoryAuditStore();
  await audit.appendResults({ deploymentId: 'deploy-acme.fleet.pr7', runId: 'run-1', repository: 'acme/fleet', branch: 'main', closedAt: new Date().toISOString(), outcome: 'succeeded', mergeSha: 'a'.repeat(40), ownMerge: true, pullRequest: 7, hosts: [{ name: 'h1', kind: 'nixos', state: 'switched', before: g(42), after: g(43) }] });
  const started: UndoInput[] = [];
  const client = {
    workflow: {
      start: (_wf: unknown, opts: { args: [UndoInput] }) => {
        started.push(opts.args[0]);
        return Promise.reject(new Error('recorded'));
      },
    },
  } as unknown as Client;
  return { undo: new UndoService(client, 'q', audit, known.map((f) => parseWith(FleetFile, f))), started };
}

test('when the request sends no fleet file, then the API uses its own for the deployment\'s repository and branch, or says what to send', async () => {
  const { undo, started } = await service([fleet('other', 'x1'), fleet('acme', 'h1')]);
  await expect(undo.start('deploy-acme.fleet.pr7', {}, 'olga')).rejects.toThrow('recorded');
  expect(started.map((i) => [i.repository.owner, i.hosts.map((h) => h.name)])).toEqual([['acme', ['h1']]]);
  const none = await service([fleet('other', 'x1')]);
  await expect(none.undo.start('deploy-acme.fleet.pr7', {}, 'olga')).rejects.toThrow(new InputError('fleet: required: the API knows no fleet file of acme/fleet@main (NIXFLEET_FLEETS); send it (fleet, or its text as fleetText)'));
  expect(none.started).toEqual([]);
});

test('when the request sends the fleet file as YAML text, then it is parsed, and errors name the field; fleet and fleetText together are refused', async () => {
  const { undo, started } = await service([]);
  const yaml = 'repository: { owner: acme, name: fleet }\nhosts:\n  - { name: h1, address: 10.0.0.9, kind: nixos }\n';
  await expect(undo.start('deploy-acme.fleet.pr7', { fleetText: yaml }, 'olga')).rejects.toThrow('recorded');
  expect(started[0]?.hosts.map((h) => h.address)).toEqual(['10.0.0.9']);
  await expect(undo.start('deploy-acme.fleet.pr7', { fleetText: 'repository: { owner: acme }\n' }, 'olga')).rejects.toThrow(/repository\.name/);
  await expect(undo.start('deploy-acme.fleet.pr7', { fleet: fleet('acme', 'h1'), fleetText: yaml }, 'olga')).rejects.toThrow('fleet, fleetText: one or the other');
  expect(started).toHaveLength(1);
});
