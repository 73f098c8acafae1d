/**
 * A Redis connection with nothing but what the bare clients need (bench/bare/): RESP2 or RESP3
 * over one socket, commands written at once, replies matched in order, RESP3 pushes handed to
 * `onPush`. No reconnect, no timeouts, no offline queue, no error recovery: it measures how
 * fast a Node client can be, not how a real one must behave.
 */
import net from 'node:net';

export type Reply = null | number | boolean | Buffer | Error | Reply[];

const CRLF = Buffer.from('\r\n');

/** One command in the unified request protocol. */
export function command(args: ReadonlyArray<string | number | Buffer>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const b = Buffer.isBuffer(arg) ? arg : Buffer.from(String(arg));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, CRLF);
  }
  return Buffer.concat(parts);
}

/** Thrown inside parse() when the buffer ends before the reply does. */
const INCOMPLETE = Symbol('incomplete');

class Parser {
  buf: Buffer = Buffer.alloc(0);
  pos = 0;

  /** The next complete reply, or INCOMPLETE (nothing consumed). */
  next(): { value: Reply; push: boolean } | typeof INCOMPLETE {
    const start = this.pos;
    try {
      const push = this.buf[this.pos] === 0x3e; // '>'
      return { value: this.value(), push };
    } catch (err) {
      if (err !== INCOMPLETE) throw err;
      this.pos = start;
      return INCOMPLETE;
    }
  }

  private line(): string {
    const end = this.buf.indexOf(CRLF, this.pos);
    if (end === -1) throw INCOMPLETE;
    const s = this.buf.toString('latin1', this.pos + 1, end);
    this.pos = end + 2;
    return s;
  }

  private value(): Reply {
    if (this.pos >= this.buf.length) throw INCOMPLETE;
    const type = String.fromCharCode(this.buf[this.pos]!);
    const head = this.line();
    switch (type) {
      case '+':
        return Buffer.from(head);
      case '-':
        return new Error(head);
      case ':':
      case ',':
        return Number(head);
      case '#':
        return head === 't';
      case '_':
        return null;
      case '$': {
        const n = Number(head);
        if (n < 0) return null;
        if (this.pos + n + 2 > this.buf.length) throw INCOMPLETE;
        const b = this.buf.subarray(this.pos, this.pos + n);
        this.pos += n + 2;
        return b;
      }
      case '*':
      case '>':
      case '~':
      case '%': {
        const n = Number(head) * (type === '%' ? 2 : 1);
        if (n < 0) return null;
        const out: Reply[] = [];
        for (let i = 0; i < n; i++) out.push(this.value());
        return out;
      }
      default:
        throw new Error(`unexpected RESP type ${JSON.stringify(type)}`);
    }
  }
}

export class RespConnection {
  private readonly socket: net.Socket;
  private readonly parser = new Parser();
  private readonly pending: Array<(reply: Reply) => void> = [];
  onPush: (push: Reply[]) => void = () => {};

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.read(chunk));
    socket.on('error', () => {}); // the bench fails on its watchdog, not on a socket event
  }

  static connect(url: string, resp3 = false): Promise<RespConnection> {
    const { hostname, port } = new URL(url);
    return new Promise((resolve, reject) => {
      const socket = net.connect(Number(port), hostname, () => {
        const conn = new RespConnection(socket);
        if (!resp3) resolve(conn);
        else
          conn.call(['HELLO', '3']).then(
            () => resolve(conn),
            (err: unknown) => {
              conn.close();
              reject(err);
            },
          );
      });
      socket.once('error', reject);
    });
  }

  /** Writes the command now; resolves with its reply (a Redis error rejects). */
  call(args: ReadonlyArray<string | number | Buffer>): Promise<Reply> {
    return new Promise((resolve, reject) => {
      this.pending.push((r) => (r instanceof Error ? reject(r) : resolve(r)));
      this.socket.write(command(args));
    });
  }

  /** Writes a command whose answer is a push (SUBSCRIBE under RESP3), not a reply. */
  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Closes the socket; replies still awaited reject. */
  close(): void {
    this.socket.destroy();
    for (const settle of this.pending.splice(0)) settle(new Error('connection closed'));
  }

  private read(chunk: Buffer): void {
    const p = this.parser;
    p.buf = p.pos < p.buf.length ? Buffer.concat([p.buf.subarray(p.pos), chunk]) : chunk;
    p.pos = 0;
    for (;;) {
      const r = p.next();
      if (r === INCOMPLETE) return;
      if (r.push) this.onPush(r.value as Reply[]);
      else this.pending.shift()?.(r.value);
    }
  }
}
