import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { rssOf } from './proc';

export interface Child<R> {
  proc: ChildProcess;
  ready: R;
  /** fork() → the child's ready message, ms */
  startMs: number;
  peakRssMiB(): number;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {
      // gone
    }
  }
});

/** Forks bench/<file> under node --import tsx (the node process itself, so /proc/<pid> is its memory). */
export async function startChild<R>(file: string, env: Record<string, string>, readyTimeoutMs = 120_000): Promise<Child<R>> {
  const t0 = performance.now();
  const proc = fork(join(__dirname, '..', file), [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  live.add(proc);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => (live.delete(proc), resolve())));
  const ready = await new Promise<R>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${file}: not ready after ${readyTimeoutMs} ms`)), readyTimeoutMs);
    proc.on('message', (m: { type?: string }) => {
      if (m?.type === 'ready') {
        clearTimeout(timer);
        resolve(m as R);
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${file} exited (${code}) before it was ready`));
    });
  }).catch(async (err: unknown) => {
    proc.kill('SIGKILL');
    await exited;
    throw err;
  });
  const startMs = performance.now() - t0;
  let lastPeak = NaN;
  const child: Child<R> = {
    proc,
    ready,
    startMs,
    peakRssMiB() {
      try {
        lastPeak = rssOf(proc.pid as number).peakMiB;
      } catch {
        // exited: keep the last reading
      }
      return lastPeak;
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      child.peakRssMiB();
      proc.send({ type: 'stop' });
      const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
  return child;
}
