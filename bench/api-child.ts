/** The API (src/api buildApi over DeploymentService) in its own process, for its peak RSS. Config in BENCH_API; its errors (a 500's cause) go to stderr (BENCH_API_LOG: pino's level, default error). */
import { Client, Connection } from '@temporalio/client';
import pino from 'pino';
import { buildApi } from '../src/api/server';
import { TokenStore } from '../src/api/tokens';
import { DeploymentService } from '../src/service/deployments';

async function main(): Promise<void> {
  const cfg = JSON.parse(process.env.BENCH_API as string) as { address: string; namespace: string; taskQueue: string; token: string };
  const connection = await Connection.connect({ address: cfg.address });
  const client = new Client({ connection, namespace: cfg.namespace });
  const service = new DeploymentService(client, cfg.taskQueue, { searchAttributes: true });
  const app = buildApi({ service, tokens: TokenStore.fromJson({ tokens: [{ token: cfg.token, identity: 'bench', role: 'operator' }] }), logger: pino({ level: process.env.BENCH_API_LOG ?? 'error' }, pino.destination(2)), limits: { mutations: { max: 100_000, windowMs: 60_000 } } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  process.send?.({ type: 'ready', port: typeof addr === 'object' && addr ? addr.port : 0 });
  const stop = async (): Promise<void> => {
    await app.close();
    await connection.close();
    process.exit(0);
  };
  process.on('message', (m: { type?: string }) => {
    if (m?.type === 'stop') void stop();
  });
  process.on('disconnect', () => void stop());
}

main().catch((err: unknown) => {
  console.error('bench api:', err);
  process.exit(1);
});
