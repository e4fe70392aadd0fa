/**
 * Temporal's time-skipping test server for @temporalio/testing's TestWorkflowEnvironment.createTimeSkipping.
 * The SDK would download a native build from temporal.download, which this machine cannot reach; the
 * same server ships on Maven Central as `io.temporal:temporal-test-server` (Java). scripts/fetch-test-server.sh
 * fetches it (with its dependencies) into the cache; this module gives the SDK an executable that starts it.
 */
import { chmodSync, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { isExecutable } from './dev-server';

export function testServerCacheDir(): string {
  const root = process.env.NIXFLEET_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'nixfleet');
  return join(root, 'temporal-test-server');
}

let wrapper: string | undefined;

/**
 * An executable taking the port as its first argument, as the SDK calls it: $TEMPORAL_TEST_SERVER, or a
 * wrapper that runs the Java test server from the cache. Throws how to get one rather than returning nothing.
 */
export function timeSkippingServer(): string {
  const fromEnv = process.env.TEMPORAL_TEST_SERVER;
  if (fromEnv) {
    if (!isExecutable(fromEnv)) throw new Error(`TEMPORAL_TEST_SERVER=${fromEnv} is not an executable file`);
    return fromEnv;
  }
  const lib = join(testServerCacheDir(), 'lib');
  if (!existsSync(lib)) throw new Error(`No Temporal test server found (looked at $TEMPORAL_TEST_SERVER and ${lib}). Fetch it with: bash scripts/fetch-test-server.sh`);
  if (wrapper && existsSync(wrapper)) return wrapper;
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-test-server-'));
  wrapper = join(dir, 'temporal-test-server');
  writeFileSync(wrapper, `#!/bin/sh\nexec java -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp '${lib}/*' io.temporal.testserver.TestServer "$@"\n`);
  chmodSync(wrapper, 0o755);
  return wrapper;
}
