import * as fs from 'node:fs';
import { HostSession } from '../../src/hosts';
import type { HostSessionOptions } from '../../src/hosts';
import type { StandinFleet, StandinHost } from '../../testkit/fleet';

/** A session to a stand-in host, key pinned through the fleet's known_hosts. */
export function connect(fleet: StandinFleet, host: StandinHost, extra: Partial<HostSessionOptions> = {}): Promise<HostSession> {
  return HostSession.connect({
    address: host.address,
    port: host.port,
    user: host.user,
    privateKey: fleet.clientPrivateKey,
    knownHosts: fleet.knownHosts,
    label: host.name,
    readyTimeoutMs: 5000,
    keepaliveIntervalMs: 1000,
    keepaliveCountMax: 3,
    ...extra,
  });
}

/** PIDs of processes whose command line mentions `needle`. */
export function processesMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(needle)) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

/** Timings collected by a test file, printed once at the end. */
export const figures: Record<string, string> = {};
export function printFigures(title: string): void {
  const lines = Object.entries(figures).map(([k, v]) => `  ${k}: ${v}`);
  if (lines.length) process.stdout.write(`\n${title}\n${lines.join('\n')}\n`);
}
