/**
 * A read the deployment's worker does not answer in time (the server's `query timed out before a
 * worker could process it`, seen by 20 viewers of a 5,000-host deployment in bench:scale: BENCHMARKS.md)
 * is answered with the API's last answer and its age (`staleMs`), or, with none kept, a 503 and
 * Retry-After: never a 500. A unit test over a fake Temporal client (the timeout cannot be produced on
 * demand on the real server); the real path is the bench's viewers.
 */
import { ServiceError, type Client } from '@temporalio/client';
import { buildApi } from '../../src/api/server';
import { TokenStore } from '../../src/api/tokens';
import { createLogger } from '../../src/logger';
import { DeploymentService, isQueryTimeout, STALE_READS } from '../../src/service/deployments';
import type { StatusSummary } from '../../src/domain/host-pages';
import { waitFor } from '../support/temporal';

const VIEWER = 'viewer-token-0123456789abcdef';
const timeout = (): ServiceError => new ServiceError('Failed to query Workflow', { cause: Object.assign(new Error('4 DEADLINE_EXCEEDED: query timed out before a worker could process it'), { code: 4 }) });
const summary = (cursor: number): StatusSummary => ({ deploymentId: 'd1', phase: 'deploying', repository: { owner: 'acme', name: 'fleet' }, change: { pullRequest: 1 }, progressCursor: cursor, hosts: { total: 2, byState: { pending: 2 } }, audit: { entries: 1 } }) as StatusSummary;

/** A client whose deployment d1 runs and answers each query with the next of `answers` (an Error is thrown). */
function fakeClient(answers: Array<StatusSummary | Error>): Client & { queries: number } {
  const counter = { queries: 0 };
  const handle = {
    describe: async () => ({ status: { name: 'RUNNING' } }),
    query: async () => {
      counter.queries += 1;
      const a = answers.shift();
      if (a === undefined || a instanceof Error) throw a ?? new Error('no more answers');
      return a;
    },
  };
  return Object.assign(counter, { workflow: { getHandle: () => handle }, connection: { withDeadline: <R>(_d: number, fn: () => Promise<R>) => fn() } }) as unknown as Client & { queries: number };
}

/** Reads until the client has sent its second query (a read within the same millisecond shares the first one's). */
async function secondRead<T>(client: { queries: number }, read: () => Promise<T>): Promise<{ value?: T; error?: unknown }> {
  let out: { value?: T; error?: unknown } = {};
  await waitFor('a second query', async () => {
    out = await read().then((value) => ({ value }), (error: unknown) => ({ error }));
    return client.queries >= 2 ? true : undefined;
  }, 5_000, 1);
  return out;
}

test('when the server reports a query timeout, it is recognised; other errors are not', () => {
  expect(isQueryTimeout(timeout())).toBe(true);
  expect(isQueryTimeout(new ServiceError('Failed to query Workflow', { cause: Object.assign(new Error('14 UNAVAILABLE: connection refused'), { code: 14 }) }))).toBe(false);
  expect(isQueryTimeout(new Error('query timed out'))).toBe(false);
});

test('when the worker does not answer a summary read in time, then the last answer is served with its age; with none kept, a 503 with Retry-After', async () => {
  const client = fakeClient([summary(7), timeout()]);
  const service = new DeploymentService(client, 'q');
  expect((await service.summary('d1')).progressCursor).toBe(7);
  const stale = (await secondRead(client, () => service.summary('d1'))).value as StatusSummary;
  expect(stale.progressCursor).toBe(7);
  expect(stale.staleMs).toBeGreaterThanOrEqual(0);
  expect(stale.staleMs).toBeLessThanOrEqual(STALE_READS.maxAgeMs);

  const app = buildApi({ service: new DeploymentService(fakeClient([timeout()]), 'q'), tokens: TokenStore.fromJson({ tokens: [{ token: VIEWER, identity: 'victor', role: 'viewer' }] }), logger: createLogger('test', 'silent'), progressPollMs: 60_000 });
  try {
    const res = await app.inject({ method: 'GET', url: '/api/deployments/d1/summary', headers: { authorization: `Bearer ${VIEWER}` } });
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
    expect(res.json()).toEqual({ error: 'unavailable', message: 'deployment d1: its worker did not answer in time (busy or restarting); retry shortly' });
  } finally {
    await app.close();
  }
});

test('when another error fails the read, then it is not papered over with a kept answer', async () => {
  const client = fakeClient([summary(3), new Error('boom')]);
  const service = new DeploymentService(client, 'q');
  await service.summary('d1');
  expect(String((await secondRead(client, () => service.summary('d1'))).error)).toBe('Error: boom');
});
