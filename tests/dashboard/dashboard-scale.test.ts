/**
 * The dashboard at fleet scale (issue 13, item 3), in a real browser (Debian's chromium, headless,
 * driven by playwright-core) on the real parts: the Temporal dev server, the product's worker and API,
 * and the simulated fleet (testkit/simfleet) of NIXFLEET_DASHBOARD_HOSTS hosts (default 1,200; the
 * old NIXFLEET_DASHBOARD_SCALE_HOSTS is read too) in six waves. One host of the first wave fails its
 * activation, so the deployment halts with most of the fleet not attempted and awaits an operator.
 * The fleet file goes through POST /api/deployments gzip-compressed, as the CLI sends a large one.
 *
 * The dashboard reads the summary and the page it shows, never the whole status, and follows the live
 * feed's summary view: every WebSocket message and every summary or page response is measured and
 * bounded (64 KiB) whatever the fleet's size (tests/api/feed-size checks the same at 1,000 and 10,000).
 *
 * The page shows the counts (all hosts, and wave by wave) and the hosts a page at a time: the number
 * of host rows (and of elements in the document) is bounded whatever the fleet's size. The DOM size
 * and the time from a click to its rows are printed as figures, not asserted.
 */
import { gzipSync } from 'node:zlib';
import type { Browser, Page } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import { SqliteAuditStore } from '../../src/audit/sqlite-audit-store';
import { buildApi } from '../../src/api/server';
import { TokenStore } from '../../src/api/tokens';
import type { HostPage, StatusSummary } from '../../src/domain/host-pages';
import { createLogger } from '../../src/logger';
import { DeploymentService } from '../../src/service/deployments';
import { startSimWorld, type SimWorld } from '../../testkit/simfleet/world';
import { createDeployWorker } from '../../workers/worker';
import { startTestTemporal, taskQueueFor, waitFor, workflowBundle, type TestTemporal } from '../support/temporal';
import { launchChromium, openPage } from './browser';

const HOSTS = Number(process.env.NIXFLEET_DASHBOARD_HOSTS ?? process.env.NIXFLEET_DASHBOARD_SCALE_HOSTS ?? 1_200);
const WAVE = Math.ceil(HOSTS / 6);
/** What no message of the live feed and no summary or page response may exceed, at any fleet size. */
const BOUND = 64 * 1024;
/** The dashboard's page of hosts (src/dashboard/public/app.js PAGE_SIZE). */
const PAGE_SIZE = 100;
/** The host of the first wave whose activation fails: the hosts before it switch, the rest wait. */
const FAILING = 'h120';
const OPERATOR = 'op-token-0123456789abcdef';

let t: TestTemporal;
let w: SimWorld;
let app: FastifyInstance;
let base: string;
let browser: Browser;
let service: DeploymentService;
const cleanups: Array<() => Promise<unknown>> = [];
const t00 = Date.now();
/** Where the run is (to the terminal as it happens: a slow stage on a loaded machine shows which). */
const say = (what: string): void => void process.stdout.write(`dashboard-scale +${((Date.now() - t00) / 1000).toFixed(1)} s: ${what}\n`);

beforeAll(async () => {
  t = await startTestTemporal();
  cleanups.push(() => t.stop());
  say('Temporal dev server up');
  w = await startSimWorld({ hosts: Array.from({ length: HOSTS }, (_, i) => ({ name: `h${i + 1}`, kind: 'nixos' as const })), latency: { commandMs: 1 } });
  cleanups.push(() => w.stop());
  say(`${HOSTS} simulated hosts up`);
  w.fleet.host(FAILING).host.failActivation('units');
  const taskQueue = taskQueueFor('dashboard-scale');
  const workerAudit = new SqliteAuditStore(':memory:');
  const { worker, close } = await createDeployWorker({ connection: t.nativeConnection, namespace: t.server.namespace, taskQueue, deps: { ...w.activityDeps(), audit: workerAudit }, workflowBundle: await workflowBundle() });
  const running = worker.run();
  say('worker up');
  cleanups.push(async () => {
    worker.shutdown();
    await running;
    await close();
    await workerAudit.close();
  });
  service = new DeploymentService(t.client, taskQueue);
  // The service's Temporal calls in flight are counted: the API is closed, then they are awaited, then
  // the connection (a browser's request left running would otherwise retry on a closed channel).
  let inflight = 0;
  const counted = new Proxy(service, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        const r = (v as (...a: unknown[]) => unknown).apply(target, args);
        if (!(r instanceof Promise)) return r;
        inflight += 1;
        return r.finally(() => (inflight -= 1));
      };
    },
  });
  const tokens = TokenStore.fromJson({ tokens: [{ token: OPERATOR, identity: 'olga', role: 'operator' }] });
  app = buildApi({ service: counted, tokens, logger: createLogger('test', 'silent'), progressPollMs: 500 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  cleanups.push(async () => {
    await app.close();
    await waitFor("the API's Temporal calls in flight to finish", () => (inflight === 0 ? true : undefined), 60_000, 50);
  });
  const addr = app.server.address();
  base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  browser = await launchChromium();
  cleanups.push(() => browser.close());
  say('API and chromium up');
}, 600_000);
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch((err: unknown) => console.error('cleanup:', err));
});

async function call<T>(path: string): Promise<T> {
  const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${OPERATOR}` } });
  if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** Elements in the document and rows in the host table (a string: the test's TypeScript has no DOM types). */
const domSize = (page: Page): Promise<{ elements: number; hostRows: number; rows: number }> =>
  page.evaluate("({ elements: document.getElementsByTagName('*').length, hostRows: document.querySelectorAll('#hosts tbody tr').length, rows: document.querySelectorAll('tr').length })") as Promise<{ elements: number; hostRows: number; rows: number }>;
const shownHosts = (page: Page): Promise<string[]> => page.locator('#hosts tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-host') as string));
const pageInfo = (page: Page) => page.locator('#page-info');

test(`when a ${HOSTS}-host deployment awaits an operator, then the dashboard shows its counts wave by wave and pages its hosts: a bounded number of rows`, async () => {
  const names = w.fleet.hosts.map((e) => e.name);
  const waves = Array.from({ length: Math.ceil(HOSTS / WAVE) }, (_, i) => ({ name: `w${i + 1}`, hosts: names.slice(i * WAVE, (i + 1) * WAVE), maxParallel: 50 }));
  const fleet = { ...w.fleetFile({ revert: 'off', rollbackHosts: false }), rollout: { waves } };
  const pr = await w.openLockUpdate('v2');
  // Through the API, gzip-compressed (the fleet routes take 16 MiB once decompressed).
  const body = JSON.stringify({ fleet, change: { pullRequest: pr.number } });
  const fleetBytes = body.length;
  const res = await fetch(`${base}/api/deployments`, { method: 'POST', headers: { authorization: `Bearer ${OPERATOR}`, 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: gzipSync(body) });
  expect(res.status).toBe(201);
  const { deploymentId: id } = (await res.json()) as { deploymentId: string };
  say(`started ${id}`);
  const s = await waitFor(
    `${id} to await an operator`,
    async () => {
      const st = await call<StatusSummary>(`/api/deployments/${encodeURIComponent(id)}/summary`);
      return st.phase === 'awaiting-operator' ? st : undefined;
    },
    600_000,
    500,
  );
  say(`awaiting an operator: ${JSON.stringify(s.hosts.byState)}`);
  expect(s.hosts.total).toBe(HOSTS);
  expect(s.hosts.byState.failed).toBe(1);
  expect(s.waves).toHaveLength(waves.length);

  const { context, page, errors } = await openPage(browser);
  try {
    // Every live-feed message and every API response the page gets, with its size.
    const frames: Array<{ type: string; bytes: number }> = [];
    page.on('websocket', (ws) => ws.on('framereceived', (f) => frames.push({ type: String((JSON.parse(String(f.payload)) as { type?: string }).type), bytes: Buffer.byteLength(f.payload) })));
    const responses: Array<Promise<{ path: string; bytes: number; hosts?: number }>> = [];
    page.on('response', (r) => {
      const path = new URL(r.url()).pathname;
      // The rollback preview's: how many hosts it listed, too.
      const hosts = (b: Buffer): { hosts?: number } => (path.endsWith('/rollback-preview') && r.ok() ? { hosts: (JSON.parse(b.toString('utf8')) as { hosts: unknown[] }).hosts.length } : {});
      if (path.startsWith('/api/')) responses.push(r.body().then((b) => ({ path, bytes: b.length, ...hosts(b) }), () => ({ path, bytes: -1 })));
    });
    await page.goto(`${base}/`);
    await page.getByLabel('API token').fill(OPERATOR);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#identity').waitFor();

    // Open the deployment: the first page of hosts, the counts, the waves.
    const t0 = Date.now();
    await page.locator(`#deployments tr[data-id="${id}"]`).click();
    await page.locator('#hosts tbody tr').nth(PAGE_SIZE - 1).waitFor({ timeout: 120_000 });
    const openMs = Date.now() - t0;
    const opened = await domSize(page);
    expect(opened.hostRows).toBe(PAGE_SIZE);
    expect(await shownHosts(page)).toEqual(names.slice(0, PAGE_SIZE));
    const counts = Object.entries(s.hosts.byState).map(([st, n]) => `${n} ${st}`);
    const summaryText = (await page.locator('#summary-counts').textContent()) ?? '';
    expect(summaryText.startsWith(`${HOSTS} hosts: `)).toBe(true);
    expect(summaryText.replace(/^.*?: /, '').split(' · ').sort()).toEqual(counts.sort());
    expect(await page.locator('#waves tbody tr').count()).toBe(waves.length);
    expect(await page.locator('#waves tr[data-wave="w1"] td').nth(1).textContent()).toBe('halted');
    expect(await pageInfo(page).textContent()).toBe(`hosts 1–${PAGE_SIZE} of ${HOSTS} · page 1 of ${Math.ceil(HOSTS / PAGE_SIZE)}`);
    // The panel's host lists are cut to their first names.
    await page.locator('#failed-panel').getByText('⚠️ Deployment Failed').waitFor();
    expect(await page.locator('#p-failed').textContent()).toBe(FAILING);
    expect(await page.locator('#p-not-attempted').textContent()).toMatch(/ and \d+ more$/);

    // The next page: the API's page 2, the same hosts in the same order.
    const t1 = Date.now();
    await page.getByRole('button', { name: 'Next ›' }).click();
    await page.locator('#page-info[data-page="2"]').waitFor();
    const nextMs = Date.now() - t1;
    const api2 = await call<HostPage>(`/api/deployments/${encodeURIComponent(id)}/hosts?page=2&pageSize=${PAGE_SIZE}`);
    expect(await shownHosts(page)).toEqual(api2.hosts.map((h) => h.name));

    // One state: the failed host alone.
    await page.locator('#filter-state').selectOption('failed');
    await page.locator('#page-info', { hasText: 'of 1 ·' }).waitFor();
    expect(await shownHosts(page)).toEqual([FAILING]);
    expect(await page.locator(`#hosts tr[data-host="${FAILING}"]`).getAttribute('data-state')).toBe('failed');
    await page.locator('#filter-state').selectOption('');

    // One wave (a click on its row): its hosts a page at a time, all not attempted.
    const t2 = Date.now();
    await page.locator('#waves tr[data-wave="w3"]').click();
    await page.locator('#page-info', { hasText: `of ${WAVE} ·` }).waitFor();
    const waveMs = Date.now() - t2;
    expect(await shownHosts(page)).toEqual(names.slice(2 * WAVE, 2 * WAVE + PAGE_SIZE));
    const states = await page.locator('#hosts tbody tr').evaluateAll((rows) => [...new Set(rows.map((r) => r.getAttribute('data-state')))]);
    expect(states).toEqual(['not-attempted']);

    // The rollback dialog lists the first hosts and counts the rest.
    const panel = page.locator('#failed-panel');
    await panel.getByRole('button', { name: 'Rollback Deployed Hosts', disabled: false }).waitFor({ timeout: 60_000 });
    const preview = await call<{ hosts: Array<{ name: string }> }>(`/api/deployments/${encodeURIComponent(id)}/rollback-preview`);
    // With a limit: the first hosts of the same preview, and how many there are.
    const limited = await call<{ hosts: Array<{ name: string }>; hostCount: number }>(`/api/deployments/${encodeURIComponent(id)}/rollback-preview?limit=3`);
    expect({ hosts: limited.hosts.map((h) => h.name), hostCount: limited.hostCount }).toEqual({ hosts: preview.hosts.slice(0, 3).map((h) => h.name), hostCount: preview.hosts.length });
    const readsBeforeDialog = responses.length;
    await panel.getByRole('button', { name: 'Rollback Deployed Hosts' }).click();
    const dialog = page.locator('dialog#confirm');
    await dialog.waitFor();
    const items = await dialog.locator('#confirm-list > li').allTextContents();
    expect(preview.hosts.length).toBeGreaterThan(50);
    // The merge's revert, the first 50 hosts, the count of the rest.
    expect(items).toHaveLength(1 + 50 + 1);
    expect(items[items.length - 1]).toBe(`… and ${preview.hosts.length - 50} more hosts (${preview.hosts.length} in all, each back to its recorded generation)`);
    expect(await dialog.locator('#confirm-changes > li').count()).toBe(50);
    await dialog.getByRole('button', { name: 'Cancel' }).click();

    // A host of the page that moves (a rollback would; here the feed's summary and page reads suffice):
    // the sizes of everything the page read and received.
    const read = await Promise.all(responses);
    const statusReads = read.filter((r) => r.path === `/api/deployments/${encodeURIComponent(id)}` || r.path === `/api/deployments/${id}`);
    expect(statusReads).toEqual([]);
    // The rollback preview: its actions before the dialog (no hosts), its first hosts when the dialog opens.
    const previews = read.flatMap((r, i) => (r.path.endsWith('/rollback-preview') ? [{ hosts: r.hosts, dialog: i >= readsBeforeDialog }] : []));
    expect(previews.filter((p) => !p.dialog).length).toBeGreaterThan(0);
    expect(previews.filter((p) => !p.dialog).map((p) => p.hosts)).toEqual(previews.filter((p) => !p.dialog).map(() => 0));
    expect(previews.filter((p) => p.dialog)[0]).toEqual({ hosts: 50, dialog: true });
    const bounded = read.filter((r) => /\/(summary|hosts|rollback-preview)$/.test(r.path) || r.path === '/api/deployments');
    expect(bounded.length).toBeGreaterThan(3);
    for (const r of bounded) expect({ path: r.path, bounded: r.bytes > 0 && r.bytes < BOUND }).toEqual({ path: r.path, bounded: true });
    expect(frames.some((f) => f.type === 'summary')).toBe(true);
    for (const f of frames) expect({ type: f.type, bounded: f.bytes < BOUND }).toEqual({ type: f.type, bounded: true });
    const largest = (xs: Array<{ bytes: number }>): number => Math.max(0, ...xs.map((x) => x.bytes));
    const after = await domSize(page);
    expect(after.hostRows).toBeLessThanOrEqual(PAGE_SIZE);
    // Every row of the document: the page of hosts, the waves, the deployments list, the audit log.
    expect(after.rows).toBeLessThan(PAGE_SIZE + waves.length + 100);
    expect(errors).toEqual([]);
    process.stdout.write(
      [
        `dashboard at ${HOSTS} hosts (${waves.length} waves; fleet file ${(fleetBytes / 1024).toFixed(0)} KiB): ${opened.elements} elements (${opened.rows} rows, ${opened.hostRows} host rows) after opening the deployment, ${after.elements} at the end`,
        `  open → first page drawn ${openMs} ms; next page ${nextMs} ms; a wave's page ${waveMs} ms (this machine, loaded)`,
        `  live feed: ${frames.length} messages, the largest ${largest(frames)} B; summary and page responses: the largest ${largest(bounded)} B (${read.length} API responses in all)`,
        '',
      ].join('\n'),
    );
  } finally {
    await context.close();
  }
}, 900_000);
