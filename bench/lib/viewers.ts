/**
 * Dashboard-like viewers of one deployment through the API: each reads the bounded summary and the
 * first page of hosts (what the dashboard's deployment view reads), waits, and reads again, until
 * stopped. Every read's latency and every answer that is not a 200 (e.g. a 5xx for "consistent query
 * buffer is full") is kept.
 */
import { performance } from 'node:perf_hooks';

export interface ViewerFigures {
  viewers: number;
  reads: number;
  /** Read latencies, ms (the summary and the page, each one read). */
  latenciesMs: number[];
  /** Answers other than 200 by status (0: the request itself failed). */
  notOk: Record<string, number>;
  /** The first few of them: path, status and the start of the body (what went wrong). */
  notOkSamples: string[];
  /** 200s that carried `staleMs`: the API's last answer, the worker having not answered in time. */
  stale: number;
}

export function startViewers(baseUrl: string, token: string, deploymentId: string, viewers: number, intervalMs: number): { stop(): Promise<ViewerFigures> } {
  let stopped = false;
  const latenciesMs: number[] = [];
  const notOk: Record<string, number> = {};
  const notOkSamples: string[] = [];
  let stale = 0;
  const paths = [`/api/deployments/${encodeURIComponent(deploymentId)}/summary`, `/api/deployments/${encodeURIComponent(deploymentId)}/hosts?page=1&pageSize=50`];
  const read = async (path: string): Promise<void> => {
    const t0 = performance.now();
    let status = 0;
    let body = '';
    try {
      const res = await fetch(`${baseUrl}${path}`, { headers: { authorization: `Bearer ${token}` } });
      body = Buffer.from(await res.arrayBuffer()).toString('utf8');
      status = res.status;
    } catch (err) {
      status = 0;
      body = String(err);
    }
    if (status === 200) {
      latenciesMs.push(performance.now() - t0);
      if (body.includes('"staleMs":')) stale += 1;
    } else {
      notOk[String(status)] = (notOk[String(status)] ?? 0) + 1;
      if (notOkSamples.length < 5) notOkSamples.push(`${path.split('/').pop()}: ${status} ${body.slice(0, 300)}`);
    }
  };
  const loops = Array.from({ length: viewers }, async (_, i) => {
    // Spread the viewers over one interval, as dashboards opened at different moments are.
    await new Promise((r) => setTimeout(r, (intervalMs * i) / viewers));
    while (!stopped) {
      for (const p of paths) await read(p);
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  });
  return {
    async stop() {
      stopped = true;
      await Promise.all(loops);
      return { viewers, reads: latenciesMs.length + Object.values(notOk).reduce((a, b) => a + b, 0), latenciesMs, notOk, notOkSamples, stale };
    },
  };
}
