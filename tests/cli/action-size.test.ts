/**
 * What `nixfleet control`, `dismiss` and `start-now` print after they act, at fleet scale (issue 13):
 * the bounded summary (the one `status` and the follow show) and only the hosts that matter (failed or
 * in flight, the first ACTION_HOSTS of them and how many more), never the whole table. Through the real
 * API (buildApi) and the CLI's real `run`; the service behind it answers each action with the whole
 * status of a running 1,000- or 10,000-host deployment (tests/support/big-status.ts), as it does.
 */
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../src/api/server';
import { TokenStore } from '../../src/api/tokens';
import { run } from '../../src/cli/main';
import type { DeploymentStatus, HostStatus } from '../../src/domain/deployment';
import { ACTION_HOSTS } from '../../src/domain/host-pages';
import { createLogger } from '../../src/logger';
import type { DeploymentService } from '../../src/service/deployments';
import { bigStatus } from '../support/big-status';

const OPERATOR = 'operator-token-0123456789abcdef';

/** A running deployment of `n` hosts: the first 150 switched, 2 switching, 30 failed (more than ACTION_HOSTS), the rest pending. */
function statusOf(n: number): DeploymentStatus {
  const s = bigStatus(n, 10, { controls: { paused: true, pausedBy: 'olga', skipped: [], retries: 0 } });
  s.hosts.forEach((h: HostStatus, i) => {
    if (i < 150) h.state = 'switched';
    else if (i < 152) h.state = 'switching';
    else if (i < 182) {
      h.state = 'failed';
      h.error = 'activation failed (exit 4)';
    }
  });
  return s;
}

async function act(n: number, argv: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const status = statusOf(n);
  const answer = (summary: string) => async () => ({ summary, status });
  const service = { control: answer('paused by olga'), act: answer('dismissed by olga'), startNow: answer('started now by olga') } as unknown as DeploymentService;
  const app: FastifyInstance = buildApi({ service, tokens: TokenStore.fromJson({ tokens: [{ token: OPERATOR, identity: 'olga', role: 'operator' }] }), logger: createLogger('test', 'silent') });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const out: string[] = [];
  const err: string[] = [];
  try {
    const code = await run(argv, {
      out: (s) => out.push(...s.split('\n')),
      err: (s) => err.push(s),
      confirm: async () => false,
      env: { NIXFLEET_API_URL: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`, NIXFLEET_TOKEN: OPERATOR },
    });
    return { code, out, err };
  } finally {
    await app.close();
  }
}

test.each([
  [['control', 'd1', 'pause'], 'paused by olga'],
  [['dismiss', 'd1'], 'dismissed by olga'],
  [['start-now', 'd1'], 'started now by olga'],
])('when %j acts on a 10,000-host deployment, then it prints the summary and the failed and in-flight hosts only, as many lines as at 1,000 hosts', async (argv, said) => {
  const small = await act(1_000, argv);
  const large = await act(10_000, argv);
  for (const r of [small, large]) {
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.out[0]).toBe(said);
  }
  expect(large.out).toHaveLength(small.out.length);
  expect(large.out.length).toBeLessThan(60);
  const text = large.out.join('\n');
  expect(text).toContain('hosts: 10000: 9818 pending · 2 switching · 150 switched · 30 failed');
  expect(text).toContain('⏸ paused by olga');
  // The hosts that matter: the two in flight and the first failed ones, then how many more and where to see them.
  const rows = large.out.filter((l) => /^host-\d{5}\s/.test(l));
  expect(rows).toHaveLength(ACTION_HOSTS);
  expect(rows[0]).toMatch(/^host-00150\s+nixos\s+switching/);
  expect(rows[2]).toMatch(/^host-00152\s+nixos\s+failed\s+.*activation failed \(exit 4\)$/);
  expect(text).toContain(`${32 - ACTION_HOSTS} more failed or in flight (nixfleet status d1 --state failed`);
  expect(large.out.some((l) => l.startsWith('host-00000'))).toBe(false);
}, 120_000);
