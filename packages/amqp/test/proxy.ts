/**
 * A TCP proxy in front of the shared RabbitMQ: cutting its sockets drops the client's connection
 * the way a network failure or a broker restart does, without touching the shared broker.
 */
import net from 'node:net';

/** A running proxy. */
export class TcpProxy {
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  #pairs: Array<[net.Socket, net.Socket]> = [];
  /** How many client connections it accepted. */
  accepted = 0;
  #refusing = false;

  private constructor(targetPort: number) {
    this.#server = net.createServer((client) => {
      if (this.#refusing) {
        client.destroy();
        return;
      }
      this.accepted++;
      const upstream = net.connect(targetPort, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream);
      upstream.pipe(client);
      this.#pairs.push([client, upstream]);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  /** Starts a proxy on a free port, forwarding to `targetPort` on 127.0.0.1. */
  static async start(targetPort = 5672): Promise<TcpProxy> {
    const proxy = new TcpProxy(targetPort);
    await new Promise<void>((resolve) => proxy.#server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  /** The URL to give the transports. */
  get url(): string {
    return `amqp://guest:guest@127.0.0.1:${(this.#server.address() as net.AddressInfo).port}`;
  }

  /** Cuts every connection; with `refuseForMs`, also refuses new ones for a while. */
  cut(refuseForMs = 0): void {
    for (const s of this.#sockets) s.destroy();
    if (refuseForMs > 0) {
      this.#refusing = true;
      setTimeout(() => (this.#refusing = false), refuseForMs);
    }
  }

  /**
   * Silently stops forwarding on the current connections (a network partition: nothing is
   * closed, bytes just stop arriving). New connections are forwarded normally.
   */
  freeze(): void {
    for (const [client, upstream] of this.#pairs.splice(0)) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
  }

  /** Stops the proxy. */
  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
