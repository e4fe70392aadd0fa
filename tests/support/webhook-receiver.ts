/**
 * A notification receiver for the saga tests (tests/saga/notify, notify-targets): an HTTP server that
 * takes a delivery only as a real one would, a POST of JSON whose X-NixFleet-Signature-256 is the
 * HMAC-SHA256 of its body under the secret of the path it was sent to; anything else is refused with
 * 401 and counted.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { NotifyBody } from '../../src/domain/notify';

export interface SignedDelivery {
  /** The request's path, as the receiver's `secrets` name it. */
  path: string;
  /** X-NixFleet-Event. */
  event: string;
  /** X-NixFleet-Delivery. */
  delivery: string;
  body: NotifyBody;
}

export interface SignedReceiver {
  /** `http://127.0.0.1:<port>`: a path of `secrets` after it is a receiving URL. */
  base: string;
  deliveries: SignedDelivery[];
  /** Deliveries refused so far: unknown path, not a JSON POST, or a signature that does not verify. */
  readonly refused: number;
  close(): Promise<void>;
}

/** A receiver listening on 127.0.0.1; `secrets` maps each receiving path to its signing secret. */
export async function signedReceiver(secrets: Readonly<Record<string, string>>): Promise<SignedReceiver> {
  const deliveries: SignedDelivery[] = [];
  let refused = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const path = req.url ?? '';
      const secret = Object.hasOwn(secrets, path) ? secrets[path] : undefined;
      const expected = Buffer.from(`sha256=${createHmac('sha256', secret ?? '').update(raw).digest('hex')}`);
      const got = Buffer.from(String(req.headers['x-nixfleet-signature-256'] ?? ''));
      if (!secret || req.method !== 'POST' || req.headers['content-type'] !== 'application/json' || got.length !== expected.length || !timingSafeEqual(got, expected)) {
        refused += 1;
        res.writeHead(401).end('bad signature');
        return;
      }
      deliveries.push({ path, event: String(req.headers['x-nixfleet-event']), delivery: String(req.headers['x-nixfleet-delivery']), body: JSON.parse(raw.toString('utf8')) as NotifyBody });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    deliveries,
    get refused() {
      return refused;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
