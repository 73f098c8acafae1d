/**
 * The Pub/Sub ping-pong with no layer: one RESP3 connection that both subscribes and
 * publishes (RESP3 allows commands on a subscribed connection, so a message and the next
 * PUBLISH share one socket — fewer reads than any RESP2 client, which needs two), raw
 * msgpack with no framing, no checks and no recovery. The bench runs the same scenario code
 * against it as against chanlayer, as the floor a Node client reaches on this machine.
 */
import { randomUUID } from 'node:crypto';
import { decode, encode } from '@msgpack/msgpack';
import type { Message } from '../../lib/types.ts';
import { command, RespConnection, type Reply } from './resp.ts';

export class BarePubSub {
  private readonly waiters = new Map<string, Array<(m: Message) => void>>();
  /** Messages that came before a receive for them. */
  private readonly early = new Map<string, Message[]>();
  private readonly subscribed = new Map<string, () => void>();

  private constructor(private readonly conn: RespConnection) {
    conn.onPush = (push) => this.onPush(push);
  }

  static async connect(url: string): Promise<BarePubSub> {
    return new BarePubSub(await RespConnection.connect(url, true));
  }

  async newChannel(): Promise<string> {
    const channel = `specific.${randomUUID().replaceAll('-', '')}`;
    // A subscribe is confirmed by a push, not a reply.
    await new Promise<void>((resolve) => {
      this.subscribed.set(channel, resolve);
      this.conn.write(command(['SUBSCRIBE', channel]));
    });
    return channel;
  }

  async send(channel: string, message: Message): Promise<void> {
    await this.conn.call(['PUBLISH', channel, Buffer.from(encode(message))]);
  }

  receive(channel: string): Promise<Message> {
    const message = this.early.get(channel)?.shift();
    if (message) return Promise.resolve(message);
    return new Promise((resolve) => {
      const list = this.waiters.get(channel);
      if (list) list.push(resolve);
      else this.waiters.set(channel, [resolve]);
    });
  }

  async close(): Promise<void> {
    this.conn.close();
  }

  private onPush([kind, channel, data]: Reply[]): void {
    const name = (channel as Buffer).toString();
    if (String(kind) === 'subscribe') {
      this.subscribed.get(name)?.();
      this.subscribed.delete(name);
    } else if (String(kind) === 'message') {
      const message = decode(data as Buffer) as Message;
      const waiter = this.waiters.get(name)?.shift();
      if (waiter) waiter(message);
      else if (this.early.has(name)) this.early.get(name)!.push(message);
      else this.early.set(name, [message]);
    }
  }
}
