/**
 * Metrics on the real stack: the worker's own listener and the API's GET /metrics are scraped while a
 * deployment runs, fails on a host, rolls back and reverts, and the figures move.
 */
import { OPERATOR, startStack, VIEWER, type Stack } from './stack';
import { waitFor } from '../support/temporal';

let s: Stack;

beforeAll(async () => {
  s = await startStack('metrics', [
    { name: 'p1', kind: 'nixos', generations: [20, 21] },
    { name: 'p2', kind: 'nixos', generations: [20, 21] },
  ], { metrics: true });
});
afterAll(async () => {
  await s?.stop();
});

/** The value of one series (labels in any order), 0 when absent. */
function value(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

const scrapeWorker = async (): Promise<string> => {
  const res = await fetch(s.workerMetricsUrl as string);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text();
};
const scrapeApi = async (token = VIEWER): Promise<{ status: number; text: string }> => {
  const res = await fetch(`${s.base}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, text: await res.text() };
};

test('GET /metrics on the API needs a viewer token', async () => {
  expect((await fetch(`${s.base}/metrics`)).status).toBe(401);
  expect((await scrapeApi('wrong-token-0123456789abcdef')).status).toBe(401);
  expect((await scrapeApi(VIEWER)).status).toBe(200);
  expect((await scrapeApi(OPERATOR)).status).toBe(200);
  // The worker's listener serves only /metrics.
  expect((await fetch((s.workerMetricsUrl as string).replace(/\/metrics$/, '/other'))).status).toBe(404);
});

test('during a deployment that fails on p2, rolls back and reverts: host steps, SSH connections, rollbacks, reverts and API requests move', async () => {
  const before = await scrapeWorker();
  const apiBefore = (await scrapeApi()).text;
  const pr = await s.world.openLockUpdate('v2');
  s.world.fleet.host('p2').failActivation('units', { onlyVersion: 'v2' });
  // p1 holds its activation: the scrape below sees the deployment in flight.
  s.world.fleet.host('p1').hangActivation(true);
  const id = await s.deploy(pr.number, { revert: 'commit', rollbackHosts: true });

  await waitFor('p1 activation to start', () => (s.world.fleet.host('p1').commandLog().some((e) => e.tool === 'hang') ? true : undefined), 90_000);
  const during = await scrapeWorker();
  expect(value(during, 'nixfleet_ssh_connections')).toBeGreaterThanOrEqual(1);
  expect(value(during, 'nixfleet_host_step_duration_seconds_count', { step: 'recordGeneration', host_kind: 'nixos', result: 'ok' })).toBeGreaterThan(value(before, 'nixfleet_host_step_duration_seconds_count', { step: 'recordGeneration', host_kind: 'nixos', result: 'ok' }));
  expect(value(during, 'nixfleet_activity_attempts_total', { activity: 'resolveChange', result: 'ok' })).toBe(value(before, 'nixfleet_activity_attempts_total', { activity: 'resolveChange', result: 'ok' }) + 1);
  expect(value(during, 'nixfleet_deployments_requested_total', { outcome: 'requested' })).toBe(value(before, 'nixfleet_deployments_requested_total', { outcome: 'requested' }) + 1);
  s.world.fleet.host('p1').hangActivation(false);

  const st = await s.waitPhase(id, ['awaiting-operator']);
  expect(st.failedHost).toBe('p2');
  // The auto-compensate entry is written beside the workflow: it enters awaiting-operator without
  // waiting for the write (an audit store that is down must not hold the manual window), so the
  // counter moves when the write's activity ends, possibly after the phase shows.
  const audited = (text: string): number => value(text, 'nixfleet_audit_entries_total', { action: 'auto-compensate' }) - value(before, 'nixfleet_audit_entries_total', { action: 'auto-compensate' });
  await waitFor('the auto-compensate audit entry to be counted', async () => (audited(await scrapeWorker()) >= 1 ? true : undefined), 30_000, 200);
  const after = await scrapeWorker();
  const delta = (name: string, labels: Record<string, string> = {}): number => value(after, name, labels) - value(before, name, labels);
  // p2's switch failed with its failure type; p1's succeeded; both were rolled back; one revert commit.
  expect(delta('nixfleet_host_step_duration_seconds_count', { step: 'switchHost', result: 'SwitchFailed' })).toBe(1);
  expect(delta('nixfleet_host_step_duration_seconds_count', { step: 'switchHost', result: 'ok' })).toBe(1);
  expect(delta('nixfleet_host_step_duration_seconds_sum', { step: 'switchHost' })).toBeGreaterThan(0);
  expect(delta('nixfleet_rollbacks_total', { result: 'ok' })).toBe(2);
  expect(delta('nixfleet_reverts_total', { result: 'ok', kind: 'commit' })).toBe(1);
  expect(delta('nixfleet_audit_entries_total', { action: 'auto-compensate' })).toBe(1);
  // Histogram buckets are cumulative: the +Inf bucket holds every observation.
  expect(value(after, 'nixfleet_host_step_duration_seconds_bucket', { step: 'switchHost', result: 'ok', le: '+Inf' })).toBe(value(after, 'nixfleet_host_step_duration_seconds_count', { step: 'switchHost', result: 'ok' }));

  // The API counted the deployment's start and the status reads, by route pattern and status.
  const apiAfter = (await scrapeApi()).text;
  const apiDelta = (labels: Record<string, string>): number => value(apiAfter, 'nixfleet_api_request_duration_seconds_count', labels) - value(apiBefore, 'nixfleet_api_request_duration_seconds_count', labels);
  expect(apiDelta({ route: '/api/deployments', method: 'POST', status: '201' })).toBe(1);
  expect(apiDelta({ route: '/api/deployments/:id', method: 'GET', status: '200' })).toBeGreaterThanOrEqual(1);
  expect(apiDelta({ route: '/metrics', method: 'GET', status: '200' })).toBeGreaterThanOrEqual(1);
  expect(apiAfter).not.toContain(id);
  // Dismissed, the deployment closes: counted once by its outcome.
  expect((await s.call('POST', `/api/deployments/${id}/dismiss`, {})).status).toBe(200);
  const closed = await s.waitPhase(id, ['closed']);
  expect(closed.outcome).toBe('failed-rolled-back');
  const total = (text: string): number => value(text, 'nixfleet_deployments_total', { outcome: 'failed-rolled-back' });
  await waitFor('the closed deployment to be counted', async () => (total(await scrapeWorker()) === total(before) + 1 ? true : undefined), 30_000, 200);
  expect(value(await scrapeWorker(), 'nixfleet_deployments_total')).toBe(value(before, 'nixfleet_deployments_total') + 1);
});
