/**
 * Live progress over the WebSocket on the real stack: a deployment that fails on m2, then an operator's
 * rollback through the API, watched by a client that was there from the start and by one that came late.
 */
import type { DeploymentStatus } from '../../src/domain/deployment';
import { OPERATOR, ProgressClient, startStack, VIEWER, type Stack } from './stack';
import { waitFor } from '../support/temporal';

let s: Stack;
const clients: ProgressClient[] = [];
beforeAll(async () => {
  s = await startStack('ws-progress', [
    { name: 'm1', kind: 'nixos' },
    { name: 'm2', kind: 'nixos' },
    { name: 'm3', kind: 'nixos' },
  ]);
});
afterAll(async () => {
  for (const c of clients) await c.close();
  await s?.stop();
});

const client = (opts: { header?: string } = {}): ProgressClient => {
  const c = new ProgressClient(s.base, opts);
  clients.push(c);
  return c;
};
type HostEvent = { type: 'host'; seq: number; host: string; from: string; to: string };
type Numbered = { type: 'host' | 'phase'; seq: number; from: string; to: string; host?: string };
const hostEvents = (c: ProgressClient): HostEvent[] => c.messages.filter((m) => m.type === 'host') as unknown as HostEvent[];
const transitions = (c: ProgressClient): Numbered[] => c.messages.filter((m) => m.type === 'host' || m.type === 'phase') as unknown as Numbered[];
/** Each transition once, in order, numbered without a gap from the first one the client was owed. */
const expectContiguous = (c: ProgressClient, after: number): void => {
  expect(transitions(c).map((e) => e.seq)).toEqual(Array.from({ length: transitions(c).length }, (_, i) => after + 1 + i));
};

test('when a deployment fails and an operator rolls it back, then a subscribed client receives each host transition in order, and a late client starts from the current state', async () => {
  const pr = await s.world.openLockUpdate('v2');
  s.world.fleet.host('m2').failActivation('units', { onlyVersion: 'v2' });
  const id = await s.deploy(pr.number, { revert: 'off', rollbackHosts: false });

  // Early client: authenticates with its first message (what the dashboard does) and asks for every
  // transition from the start (since 0), however far the deployment has got by now.
  const early = client();
  await early.send({ type: 'auth', token: VIEWER });
  await early.waitFor('ready', (m) => m.type === 'ready');
  expect(early.messages[0]).toEqual({ type: 'ready', identity: 'victor', role: 'viewer' });
  await early.send({ type: 'subscribe', deploymentId: id, since: 0 });
  // A client without a cursor: the state now (whatever it is), then everything after it.
  const now = client({ header: VIEWER });
  await now.waitFor('ready', (m) => m.type === 'ready');
  await now.send({ type: 'subscribe', deploymentId: id });
  const first = await now.waitFor<{ status: DeploymentStatus; cursor: number }>('the first snapshot', (m) => m.type === 'snapshot');
  expect(now.messages.filter((m) => m.type !== 'ready')[0]).toBe(first);
  expect(first.status.progressCursor ?? 0).toBe(first.cursor);
  await early.waitFor('awaiting-operator', (m) => m.type === 'phase' && m.to === 'awaiting-operator');

  // Late client: a header token (a CLI can send one), subscribes after the failure.
  const late = client({ header: OPERATOR });
  await late.waitFor('ready', (m) => m.type === 'ready');
  await late.send({ type: 'subscribe', deploymentId: id });
  const snap = await late.waitFor<{ status: DeploymentStatus }>('the late snapshot', (m) => m.type === 'snapshot');
  expect(late.messages.filter((m) => m.type !== 'ready')[0]).toBe(snap);
  expect(snap.status.phase).toBe('awaiting-operator');
  expect(snap.status.hosts.map((h) => `${h.name}:${h.state}`)).toEqual(['m1:switched', 'm2:failed', 'm3:not-attempted']);
  expect(s.app.progressPollers()).toEqual([id]);
  expect(snap.status.progressCursor).toBe((snap as unknown as { cursor: number }).cursor);

  const res = await s.call<{ accepted: boolean }>('POST', `/api/deployments/${id}/rollback`, { action: 'revert-and-rollback' });
  expect(res).toMatchObject({ status: 200, body: { accepted: true } });
  await early.waitFor('final', (m) => m.type === 'final');
  await late.waitFor('final', (m) => m.type === 'final');
  await now.waitFor('final', (m) => m.type === 'final');

  const line = (e: Numbered): string => (e.type === 'host' ? `${String(e.host)}: ${e.from} → ${e.to}` : `phase: ${e.from} → ${e.to}`);
  // Every transition of the deployment, from the first: phases and hosts in the order they happened.
  expect(transitions(early).map(line)).toEqual([
    'phase: starting → merging',
    'phase: merging → deploying',
    'm1: pending → switching',
    'm1: switching → switched',
    'm2: pending → switching',
    'm2: switching → failed',
    'm3: pending → not-attempted',
    'phase: deploying → compensating',
    'phase: compensating → awaiting-operator',
    // the operator's rollback, in reverse fleet order
    'phase: awaiting-operator → rolling-back',
    'm2: failed → rolling-back',
    'm2: rolling-back → rolled-back',
    'm1: switched → rolling-back',
    'm1: rolling-back → rolled-back',
    'phase: rolling-back → awaiting-operator',
    'phase: awaiting-operator → closed',
  ]);
  expectContiguous(early, 0);
  // The other clients: exactly the transitions after the cursor of their first snapshot.
  expectContiguous(now, first.cursor);
  expect(transitions(now).map(line)).toEqual(transitions(early).filter((e) => e.seq > first.cursor).map(line));
  const lateCursor = (snap as unknown as { cursor: number }).cursor;
  expectContiguous(late, lateCursor);
  expect(transitions(late).map(line)).toEqual(transitions(early).filter((e) => e.seq > lateCursor).map(line));
  expect(hostEvents(late).map(line)).toEqual([
    'm2: failed → rolling-back',
    'm2: rolling-back → rolled-back',
    'm1: switched → rolling-back',
    'm1: rolling-back → rolled-back',
  ]);
  const hostLine = (e: HostEvent): string => `${e.host}: ${e.from} → ${e.to}`;
  expect(hostEvents(early).map(hostLine)).toEqual([
    'm1: pending → switching',
    'm1: switching → switched',
    'm2: pending → switching',
    'm2: switching → failed',
    'm3: pending → not-attempted',
    // the rollback, in reverse fleet order
    'm2: failed → rolling-back',
    'm2: rolling-back → rolled-back',
    'm1: switched → rolling-back',
    'm1: rolling-back → rolled-back',
  ]);
  const phases = early.messages.filter((m) => m.type === 'phase').map((m) => `${String(m.from)}→${String(m.to)}`);
  expect(phases).toContain('awaiting-operator→rolling-back');
  expect(phases.at(-1)).toMatch(/→closed$/);
  const lastSnap = early.messages.filter((m) => m.type === 'snapshot').at(-1) as unknown as { status: DeploymentStatus };
  expect(lastSnap.status.outcome).toBe('failed-rolled-back');

  // The last client to leave stops the feed.
  await early.close();
  await now.close();
  expect(s.app.progressPollers()).toEqual([id]);
  await late.close();
  await waitFor('the feed to stop', () => (s.app.progressPollers().length === 0 ? true : undefined));
});

test('when a client does not authenticate, sends a bad token or a bad message, then it gets nothing about any deployment', async () => {
  const noAuth = client();
  await noAuth.send({ type: 'subscribe', deploymentId: 'deploy-acme.x.pr1' });
  await waitFor('close', () => noAuth.closed);
  expect(noAuth.closed?.code).toBe(4401);
  expect(noAuth.messages).toEqual([]);

  const wrong = client();
  await wrong.send({ type: 'auth', token: 'not-a-token-0123456789' });
  await waitFor('close', () => wrong.closed);
  expect(wrong.closed?.code).toBe(4401);

  const badHeader = client({ header: 'not-a-token-0123456789' });
  await badHeader.send({ type: 'subscribe', deploymentId: 'deploy-acme.x.pr1' });
  await waitFor('close', () => badHeader.closed);
  expect(badHeader.closed?.code).toBe(4401);

  const ok = client();
  await ok.send({ type: 'auth', token: VIEWER });
  await ok.send({ type: 'subscribe', deploymentId: 'bad id!' });
  const err = await ok.waitFor<{ message: string; status: number }>('a 400', (m) => m.type === 'error');
  expect(err).toMatchObject({ status: 400, message: expect.stringMatching(/^message\.deploymentId: /) as unknown });
  await ok.send({ type: 'subscribe', deploymentId: 'deploy-nope.nope.pr1' });
  const nf = await ok.waitFor<{ status: number }>('a 404', (m) => m.type === 'error' && m.status === 404);
  expect(nf.status).toBe(404);
  expect(ok.closed).toBeUndefined();
});
