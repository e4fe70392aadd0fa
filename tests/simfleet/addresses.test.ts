/** The simulated fleet's loopback addresses (simAddress): one per host, valid, never 127.0.0.1. */
import { simAddress } from '../../testkit/simfleet/fleet';

test('when a fleet has up to 200,000 hosts, then every host gets its own valid loopback address off 127.0.0.1', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 200_000; i++) {
    const a = simAddress(i);
    const o = a.split('.').map(Number);
    expect(o).toHaveLength(4);
    expect(o[0]).toBe(127);
    for (const x of o) expect(Number.isInteger(x) && x >= 0 && x <= 255).toBe(true);
    expect(o[1]).not.toBe(0);
    expect(o[3]).toBeGreaterThan(0);
    seen.add(a);
  }
  expect(seen.size).toBe(200_000);
  expect(simAddress(0)).toBe('127.77.0.1');
});
