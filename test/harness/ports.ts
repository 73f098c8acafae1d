/** Free loopback ports for test servers. Only 127.0.0.1 is ever used. */
import net from 'node:net';

export const LOOPBACK = '127.0.0.1';

// The kernel may hand the same ephemeral port out again right after we release it;
// never give one port to two servers of this process. (Other processes can still
// race us for it: callers retry on EADDRINUSE.)
const handedOut = new Set<number>();

/** A port nothing listens on right now: bind port 0 on 127.0.0.1, read it, release it. */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = net.createServer();
      server.once('error', reject);
      server.listen(0, LOOPBACK, () => {
        const { port } = server.address() as net.AddressInfo;
        server.close(() => resolve(port));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}
