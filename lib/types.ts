/** The public shape every layer shares (README, "API at a glance"). */
export type Message = { type: string; [key: string]: unknown };

export interface ReceiveOptions {
  signal?: AbortSignal;
}

export interface ChannelLayer<M extends Message = Message> {
  readonly extensions: readonly string[];
  send(channel: string, message: M): Promise<void>;
  receive(channel: string, opts?: ReceiveOptions): Promise<M>;
  newChannel(prefix?: string): Promise<string>;
  groupAdd(group: string, channel: string): Promise<void>;
  groupDiscard(group: string, channel: string): Promise<void>;
  groupSend(group: string, message: M): Promise<void>;
  flush(): Promise<void>;
  close(): Promise<void>;
}
