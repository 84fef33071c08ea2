/**
 * A tiny Redis client for the harness's own checks (readiness, self-tests): one command per
 * connection, plain TCP or TLS, optional AUTH. The transports under test use their real client
 * libraries; this exists only so the harness depends on none.
 *
 * @module
 */
import net from 'node:net';
import tls from 'node:tls';

/** Where and how to connect. */
export interface RespTarget {
  /** TCP port on 127.0.0.1. */
  port: number;
  /** Connect over TLS, trusting this CA (PEM). */
  tls?: { ca: string | Buffer; cert?: string | Buffer; key?: string | Buffer; servername?: string };
  /** AUTH before the command. */
  auth?: { username?: string; password: string };
  /** Give up after this many milliseconds. Default 2000. */
  timeoutMs?: number;
}

function encode(args: readonly (string | number)[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${String(a)}\r\n`).join('')}`;
}

/** A parsed reply: simple strings and bulk strings as strings, errors as Error, arrays as arrays. */
export type RespValue = string | number | null | Error | RespValue[];

/** Parses one reply from the front of `buf`; undefined when incomplete. */
function parse(buf: string, at = 0): { value: RespValue; end: number } | undefined {
  const nl = buf.indexOf('\r\n', at);
  if (nl < 0) return undefined;
  const type = buf[at];
  const line = buf.slice(at + 1, nl);
  switch (type) {
    case '+':
      return { value: line, end: nl + 2 };
    case '-':
      return { value: new Error(line), end: nl + 2 };
    case ':':
      return { value: Number(line), end: nl + 2 };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, end: nl + 2 };
      if (buf.length < nl + 2 + len + 2) return undefined;
      return { value: buf.slice(nl + 2, nl + 2 + len), end: nl + 2 + len + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, end: nl + 2 };
      const items: RespValue[] = [];
      let pos = nl + 2;
      for (let i = 0; i < count; i++) {
        const item = parse(buf, pos);
        if (!item) return undefined;
        items.push(item.value);
        pos = item.end;
      }
      return { value: items, end: pos };
    }
    default:
      return { value: new Error(`unexpected reply: ${buf.slice(at, at + 40)}`), end: buf.length };
  }
}

/**
 * Sends one command (after AUTH when asked) and resolves with its reply. Server errors come back
 * as Error values, not rejections; connection problems and timeouts reject.
 */
export function respCommand(target: RespTarget, args: readonly (string | number)[]): Promise<RespValue> {
  return new Promise((resolve, reject) => {
    const commands: Array<readonly (string | number)[]> = [];
    if (target.auth) commands.push(target.auth.username ? ['AUTH', target.auth.username, target.auth.password] : ['AUTH', target.auth.password]);
    commands.push(args);
    const socket = target.tls
      ? tls.connect({ host: '127.0.0.1', port: target.port, ca: target.tls.ca, cert: target.tls.cert, key: target.tls.key, servername: target.tls.servername ?? 'localhost' })
      : net.connect({ host: '127.0.0.1', port: target.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`Redis on 127.0.0.1:${target.port} did not answer ${String(args[0])} within ${target.timeoutMs ?? 2000} ms.`));
    }, target.timeoutMs ?? 2000);
    let buf = '';
    const replies: RespValue[] = [];
    socket.once(target.tls ? 'secureConnect' : 'connect', () => socket.write(commands.map(encode).join('')));
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      buf += d;
      for (;;) {
        const r = parse(buf);
        if (!r) break;
        replies.push(r.value);
        buf = buf.slice(r.end);
      }
      if (replies.length >= commands.length) {
        clearTimeout(timer);
        socket.end();
        const authReply = target.auth ? replies[0] : undefined;
        resolve(authReply instanceof Error ? authReply : replies[replies.length - 1]!);
      }
    });
    socket.once('error', (error: Error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}
