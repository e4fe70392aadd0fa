/**
 * The CLI's live follow at fleet scale (issue 13): `nixfleet status DEPLOYMENT --follow` follows the
 * feed's summary view, so the bytes it receives do not grow with the fleet at fixed activity. The same
 * story (three hosts switch, one fails, the deployment waits for an operator) is played at 1,000 and at
 * 10,000 hosts through the real API (buildApi: its WebSocket, its ProgressHub, GET …/progress?view=summary,
 * …/summary, …/hosts), the CLI's real `run`, the real TransitionRing, summarize() and pageHosts(); the
 * deployment behind the service is a fake that advances one step per feed query (so the WebSocket and
 * the polling fallback see the same story, however fast they poll). Every byte the API writes to the
 * CLI's sockets is counted. The service's whole-status queries throw: the follow never asks for them.
 * A size property, not a timing one.
 */
import type { FastifyInstance } from 'fastify';
import type { Socket } from 'node:net';
import { buildApi } from '../../src/api/server';
import { TokenStore } from '../../src/api/tokens';
import { run } from '../../src/cli/main';
import type { DeploymentStatus, HostState, HostStatus } from '../../src/domain/deployment';
import { pageHosts, summarize, type HostPageQuery } from '../../src/domain/host-pages';
import { hostTransition, TransitionRing } from '../../src/domain/progress';
import { createLogger } from '../../src/logger';
import type { DeploymentService } from '../../src/service/deployments';
import { bigStatus } from '../support/big-status';

const VIEWER = 'viewer-token-0123456789abcdef';
const WAVES = 10;

/** A deployment of `n` hosts in WAVES waves; each feed query plays the story's next step. */
class Story {
  readonly ring = new TransitionRing();
  readonly status: DeploymentStatus;
  private step = 0;
  feedQueries = 0;

  constructor(n: number) {
    this.status = bigStatus(n, WAVES);
  }

  private move(i: number, to: HostState, error?: string): void {
    const h = this.status.hosts[i] as HostStatus;
    const from = h.state;
    h.state = to;
    if (error) h.error = error;
    this.status.progressCursor = this.ring.record((seq) => hostTransition(h, from, seq, 'now')).seq;
  }

  private readonly steps: Array<() => void> = [
    () => undefined,
    () => this.move(0, 'switching'),
    () => {
      this.move(0, 'switched');
      this.move(1, 'switching');
    },
    () => this.move(2, 'switching'),
    () => {
      this.move(1, 'switched');
      this.move(2, 'failed', 'activation failed (exit 4)');
      this.status.failedHost = (this.status.hosts[2] as HostStatus).name;
      this.status.failure = `switch failed on ${this.status.failedHost}`;
    },
    () => {
      const from = this.status.phase;
      this.status.phase = 'awaiting-operator';
      this.status.outcome = 'failed-not-rolled-back';
      (this.status.waves ?? [])[0]!.state = 'halted';
      this.status.progressCursor = this.ring.record((seq) => ({ seq, type: 'phase' as const, from, to: 'awaiting-operator', at: 'now' })).seq;
    },
  ];

  /** The part of DeploymentService the API's read routes and feed call. */
  service(): DeploymentService {
    const refuse = (what: string) => async (): Promise<never> => {
      throw new Error(`the follow asked for ${what}`);
    };
    return {
      progressSummary: async (_id: string, since: number | null) => {
        this.feedQueries += 1;
        this.steps[Math.min(this.step++, this.steps.length - 1)]!();
        const p = this.ring.page(since, this.status);
        return { cursor: p.cursor, oldest: p.oldest, events: p.events, summary: summarize(this.status), live: [] };
      },
      summary: async () => summarize(this.status),
      hosts: async (_id: string, q: HostPageQuery) => pageHosts(this.status, q),
      closedAs: async () => undefined,
      progress: refuse('the whole status (progress)'),
      status: refuse('the whole status'),
    } as unknown as DeploymentService;
  }
}

/** Runs `nixfleet status d1 --follow` against the API at `n` hosts; the bytes the API wrote to it, and its output. */
async function followAt(n: number, transport: 'websocket' | 'polling'): Promise<{ bytes: number; out: string[]; err: string[]; code: number; story: Story }> {
  const story = new Story(n);
  const app: FastifyInstance = buildApi({
    service: story.service(),
    tokens: TokenStore.fromJson({ tokens: [{ token: VIEWER, identity: 'vera', role: 'viewer' }] }),
    logger: createLogger('test', 'silent'),
    progressPollMs: 20,
  });
  // A proxy that does not pass WebSocket upgrades: the CLI falls back to polling.
  if (transport === 'polling') app.addHook('onRequest', async (req, reply) => (req.url.startsWith('/api/ws') ? reply.code(404).send({ message: 'no upgrades here' }) : undefined));
  const sockets = new Set<Socket>();
  app.server.on('connection', (s: Socket) => sockets.add(s));
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const out: string[] = [];
  const err: string[] = [];
  try {
    const code = await run(['status', 'd1', '--follow'], {
      out: (s) => out.push(...s.split('\n')),
      err: (s) => err.push(s),
      confirm: async () => false,
      env: { NIXFLEET_API_URL: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`, NIXFLEET_TOKEN: VIEWER },
    });
    return { bytes: [...sockets].reduce((sum, s) => sum + s.bytesWritten, 0), out, err, code, story };
  } finally {
    await app.close();
  }
}

describe.each(['websocket', 'polling'] as const)('over %s', (transport) => {
  test('when the fleet grows from 1,000 to 10,000 hosts at the same activity, then the bytes the CLI follow receives do not grow with it', async () => {
    const small = await followAt(1_000, transport);
    const large = await followAt(10_000, transport);
    process.stdout.write(`follow-size (${transport}): bytes received at 1,000 / 10,000 hosts: ${small.bytes} / ${large.bytes}; the whole status at 10,000: ${Buffer.byteLength(JSON.stringify(large.story.status))}\n`);
    for (const r of [small, large]) {
      expect(r.code).toBe(12);
      expect(r.err).toEqual(transport === 'polling' ? [expect.stringMatching(/^live feed unavailable .*; polling$/)] : []);
      // What a user reads: the phase and counts at the start, each transition once, the summary as it changes, the outcome.
      const total = r.story.status.hosts.length;
      expect(r.out[0]).toBe('phase: deploying');
      expect(r.out[1]).toBe(`  hosts: ${total}: ${total} pending · wave w1 running`);
      expect(r.out.filter((l) => l.startsWith('  ') && l.includes('→'))).toEqual([
        expect.stringMatching(/^ {2}host-00000\s+pending\s+→ switching\s*$/),
        expect.stringMatching(/^ {2}host-00000\s+switching\s+→ switched\s*$/),
        expect.stringMatching(/^ {2}host-00001\s+pending\s+→ switching\s*$/),
        expect.stringMatching(/^ {2}host-00002\s+pending\s+→ switching\s*$/),
        expect.stringMatching(/^ {2}host-00001\s+switching\s+→ switched\s*$/),
        expect.stringMatching(/^ {2}host-00002\s+switching\s+→ failed\s+activation failed \(exit 4\)$/),
      ]);
      expect(r.out).toContain('phase: awaiting-operator');
      expect(r.out).toContain(`  hosts: ${total}: ${total - 3} pending · 2 switched · 1 failed · failed on host-00002`);
      expect(r.out).toContain(`hosts: ${total}: ${total - 3} pending · 2 switched · 1 failed`);
      expect(r.out[r.out.length - 1]).toBe(`hosts 1–100 of ${total} · page 1 of ${total / 100} (--page 2 for the next, --all for every host)`);
    }
    // The same story at ten times the hosts: a few more digits in the counts, never a host list.
    expect(large.bytes - small.bytes).toBeLessThan(2_000);
    expect(large.bytes).toBeLessThan(64 * 1024);
  }, 60_000);
});
