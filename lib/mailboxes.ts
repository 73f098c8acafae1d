/**
 * Per-channel local delivery: a FIFO buffer of expiring messages plus a FIFO of waiting
 * receivers. Every layer delivers through this, so abort safety lives in one place:
 * a message is handed to a waiter synchronously (its promise is settled in the same tick), and
 * an aborted waiter is removed before any message can reach it — so a message is never both
 * lost to an abort and never given to two receivers.
 *
 * Memory stays bounded: a channel's structure exists only while it has buffered messages or
 * waiters, and a sweep timer (unref'd, stopped when nothing is buffered or vacated) drops
 * expired messages of channels nobody reads and the entries of channels left without state.
 */
import { abortReason } from './errors.ts';

interface Entry<T> {
  value: T;
  expiresAt: number;
}

const LOADED_AT = Date.now();

/**
 * A waiting receive. A plain class instance (no per-receive closures): with 100,000 idle
 * consumers, every byte here counts. Receives with a signal use `SignalWaiter`.
 */
class Waiter<T> {
  resolve!: (value: T) => void;
  reject!: (err: unknown) => void;
  /** When it started waiting, ms after module load: a small integer for 12 days (no boxing). */
  readonly since = Date.now() - LOADED_AT;

  settle(value: T): void {
    this.resolve(value);
  }

  fail(err: unknown): void {
    this.reject(err);
  }
}

class SignalWaiter<T> extends Waiter<T> {
  constructor(
    readonly signal: AbortSignal,
    public onAbort: () => void = () => {},
  ) {
    super();
  }

  override settle(value: T): void {
    this.signal.removeEventListener('abort', this.onAbort);
    this.resolve(value);
  }

  override fail(err: unknown): void {
    this.signal.removeEventListener('abort', this.onAbort);
    this.reject(err);
  }
}

/** Shared by every mailbox that has never buffered anything (never written to). */
const NO_ITEMS: never[] = [];

/**
 * One channel's state once it has buffered messages or a second waiter (a channel with just one
 * waiting receive is held as that waiter: see Slot). Arrays are allocated only when needed.
 */
class Mailbox<T> {
  items: Entry<T>[] = NO_ITEMS;
  head = 0;
  first: Waiter<T> | undefined = undefined;
  rest: Waiter<T>[] | undefined = undefined;

  get size(): number {
    return this.items.length - this.head;
  }

  /** Nothing buffered and nobody waiting: the channel needs no state. */
  get isEmpty(): boolean {
    return this.size === 0 && this.first === undefined;
  }

  get waiterCount(): number {
    return this.first === undefined ? 0 : 1 + (this.rest?.length ?? 0);
  }

  push(entry: Entry<T>): void {
    if (this.items === NO_ITEMS) this.items = [];
    this.items.push(entry);
  }

  addWaiter(waiter: Waiter<T>): void {
    if (this.first === undefined) this.first = waiter;
    else (this.rest ??= []).push(waiter);
  }

  shiftWaiter(): Waiter<T> | undefined {
    const waiter = this.first;
    if (waiter !== undefined) {
      this.first = this.rest?.shift();
      if (this.rest?.length === 0) this.rest = undefined;
    }
    return waiter;
  }

  /** Removes a waiter (abort); returns whether it was still waiting. */
  removeWaiter(waiter: Waiter<T>): boolean {
    if (this.first === waiter) {
      this.shiftWaiter();
      return true;
    }
    const i = this.rest?.indexOf(waiter) ?? -1;
    if (i === -1) return false;
    this.rest!.splice(i, 1);
    if (this.rest!.length === 0) this.rest = undefined;
    return true;
  }

  takeWaiters(): Waiter<T>[] {
    const all = this.first === undefined ? [] : [this.first, ...(this.rest ?? [])];
    this.first = this.rest = undefined;
    return all;
  }

  shift(): Entry<T> | undefined {
    const entry = this.items[this.head];
    if (entry === undefined) return undefined;
    this.items[this.head++] = undefined as never;
    // Compact now and then instead of Array#shift's O(n) per message.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return entry;
  }

  /** Drops expired entries from the head (entries are in expiry order); returns how many. */
  purge(now: number): number {
    let dropped = 0;
    while (this.head < this.items.length && this.items[this.head]!.expiresAt <= now) {
      this.shift();
      dropped++;
    }
    if (this.head === this.items.length && this.items !== NO_ITEMS) {
      this.items = NO_ITEMS;
      this.head = 0;
    }
    return dropped;
  }
}

export type PutResult = 'delivered' | 'buffered' | 'full' | 'displaced';

export interface MailboxesOptions {
  expiryMs: number;
  /** Called with the number of messages that expired unread. */
  onExpired?: (count: number) => void;
  /**
   * Called synchronously whenever a channel gains (+1) or loses (-1) a waiting receiver —
   * delivered, aborted or closed — so a reader can keep demand counts without scanning.
   */
  onWaiters?: (channel: string, delta: 1 | -1) => void;
}

/**
 * What the map holds for a channel: the waiter itself while it is the channel's only state (a
 * consumer idling in `receive`, the common case: no Mailbox object for it), else a Mailbox;
 * `undefined` once it has no state left (see vacate).
 */
type Slot<T> = Waiter<T> | Mailbox<T>;

export class Mailboxes<T> {
  private readonly boxes = new Map<string, Slot<T> | undefined>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly opts: MailboxesOptions) {}

  /**
   * Hands `value` to the channel's first waiter, or buffers it. At `limit` buffered messages,
   * `overflow: 'reject'` refuses it ('full') and `'drop-oldest'` makes room ('displaced').
   * `expiresAt` (ms epoch) defaults to now + expiry; a Redis reader passes send time + expiry.
   * `counted`: the caller accounts for a delivery itself, so onWaiters is not called for it (a
   * group message's 1,000 deliveries to one queue change its count once).
   */
  put(
    channel: string,
    value: T,
    limit: number,
    overflow: 'reject' | 'drop-oldest',
    expiresAt = Date.now() + this.opts.expiryMs,
    counted = false,
  ): PutResult {
    const slot = this.boxes.get(channel);
    if (slot instanceof Waiter) {
      this.vacate(channel);
      if (!counted) this.opts.onWaiters?.(channel, -1);
      slot.settle(value);
      return 'delivered';
    }
    let box = slot;
    const waiter = box?.shiftWaiter();
    if (waiter) {
      if (!counted) this.opts.onWaiters?.(channel, -1);
      if (box!.isEmpty) this.vacate(channel);
      waiter.settle(value);
      return 'delivered';
    }
    if (!box) {
      box = new Mailbox<T>();
      this.boxes.set(channel, box);
    }
    this.expire(box, Date.now());
    let result: PutResult = 'buffered';
    if (box.size >= limit) {
      if (overflow === 'reject') return 'full';
      box.shift();
      result = 'displaced';
    }
    box.push({ value, expiresAt });
    this.startSweeper();
    return result;
  }

  /** A message buffered for `channel` right now, taken without waiting; else undefined. */
  takeBuffered(channel: string): T | undefined {
    const box = this.boxes.get(channel);
    if (!(box instanceof Mailbox) || box.size === 0) return undefined;
    this.expire(box, Date.now());
    const entry = box.shift();
    if (box.isEmpty) this.vacate(channel);
    return entry?.value;
  }

  /** The next message for `channel`: buffered now, or the next one put. */
  take(channel: string, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    const slot = this.boxes.get(channel);
    if (slot instanceof Mailbox) {
      this.expire(slot, Date.now());
      const entry = slot.shift();
      if (entry) {
        if (slot.isEmpty) this.vacate(channel);
        return Promise.resolve(entry.value);
      }
    }
    const waiter = signal ? new SignalWaiter<T>(signal) : new Waiter<T>();
    const promise = new Promise<T>((resolve, reject) => {
      waiter.resolve = resolve;
      waiter.reject = reject;
    });
    if (waiter instanceof SignalWaiter) {
      waiter.onAbort = () => {
        if (this.removeWaiter(channel, waiter)) this.opts.onWaiters?.(channel, -1);
        waiter.reject(abortReason(waiter.signal));
      };
      waiter.signal.addEventListener('abort', waiter.onAbort, { once: true });
    }
    if (slot === undefined) this.boxes.set(channel, waiter);
    else if (slot instanceof Mailbox) slot.addWaiter(waiter);
    else {
      // A second waiter: now the channel needs a Mailbox (FIFO of waiters).
      const box = new Mailbox<T>();
      box.addWaiter(slot);
      box.addWaiter(waiter);
      this.boxes.set(channel, box);
    }
    this.opts.onWaiters?.(channel, 1);
    return promise;
  }

  /** Receivers currently waiting on `channel`. */
  waiting(channel: string): number {
    const slot = this.boxes.get(channel);
    if (slot === undefined) return 0;
    return slot instanceof Waiter ? 1 : slot.waiterCount;
  }

  /** How long the longest-waiting receive has waited (ms), or undefined when none waits. */
  oldestWaitMs(): number | undefined {
    let since = Infinity;
    for (const slot of this.boxes.values()) {
      // A channel's first waiter is its oldest.
      const first = slot instanceof Mailbox ? slot.first : slot;
      if (first !== undefined && first.since < since) since = first.since;
    }
    return since === Infinity ? undefined : Date.now() - LOADED_AT - since;
  }

  /** Number of channels holding any state (for leak checks). */
  get channelCount(): number {
    let n = 0;
    for (const slot of this.boxes.values()) if (slot !== undefined) n++;
    return n;
  }

  /** Drops the channel's buffer; its waiters, if any, keep waiting. Returns how many it held. */
  drop(channel: string): number {
    const box = this.boxes.get(channel);
    if (!(box instanceof Mailbox)) return 0;
    const dropped = box.size;
    if (box.first === undefined) this.vacate(channel);
    else {
      box.items = NO_ITEMS;
      box.head = 0;
    }
    return dropped;
  }

  /** Rejects every receive waiting on `channel` with `err`; its buffer stays. */
  rejectWaiters(channel: string, err: unknown): void {
    const slot = this.boxes.get(channel);
    if (slot === undefined) return;
    if (slot instanceof Waiter || slot.size === 0) this.vacate(channel);
    this.failWaiters(channel, slot, err);
  }

  /** Drops every buffer (flush); waiters keep waiting. */
  clear(): void {
    for (const channel of [...this.boxes.keys()]) this.drop(channel);
    this.stopSweeperIfIdle();
  }

  /** Rejects every waiter and forgets everything (close). */
  close(err: unknown): void {
    const slots = [...this.boxes];
    this.boxes.clear();
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const [channel, slot] of slots) if (slot) this.failWaiters(channel, slot, err);
  }

  /** Takes every waiter of `slot` and fails it with `err`, counting each one off. */
  private failWaiters(channel: string, slot: Slot<T>, err: unknown): void {
    for (const waiter of slot instanceof Waiter ? [slot] : slot.takeWaiters()) {
      this.opts.onWaiters?.(channel, -1);
      waiter.fail(err);
    }
  }

  /** Removes an aborted waiter from its channel; returns whether it was still waiting. */
  private removeWaiter(channel: string, waiter: Waiter<T>): boolean {
    const slot = this.boxes.get(channel);
    if (slot === waiter) {
      this.vacate(channel);
      return true;
    }
    if (!(slot instanceof Mailbox) || !slot.removeWaiter(waiter)) return false;
    if (slot.isEmpty) this.vacate(channel);
    return true;
  }

  /**
   * The channel has no state left. Its entry is overwritten, not deleted (the sweep deletes it
   * if it is still empty then). A Map that keeps deleting is rehashed over and over; each table
   * it leaves behind is garbage in the old generation that still points at the entries it
   * held, and a scavenge keeps whatever the old generation points at. So every waiter (its
   * promise and message too) was promoted and lived until the next full GC: ~450 KB per
   * 1,000-member group fan-out, about a fifth of its CPU.
   */
  private vacate(channel: string): void {
    this.boxes.set(channel, undefined);
    this.startSweeper();
  }

  private expire(box: Mailbox<T>, now: number): void {
    const dropped = box.purge(now);
    if (dropped > 0) this.opts.onExpired?.(dropped);
  }

  private sweep(): void {
    const now = Date.now();
    for (const [channel, box] of this.boxes) {
      if (box instanceof Waiter) continue;
      if (box !== undefined) {
        this.expire(box, now);
        if (!box.isEmpty) continue;
      }
      this.boxes.delete(channel);
    }
    this.stopSweeperIfIdle();
  }

  private startSweeper(): void {
    if (this.sweeper) return;
    const every = Math.min(Math.max(this.opts.expiryMs, 50), 5000);
    this.sweeper = setInterval(() => this.sweep(), every);
    this.sweeper.unref();
  }

  private stopSweeperIfIdle(): void {
    for (const box of this.boxes.values()) {
      if (box === undefined || (box instanceof Mailbox && box.size > 0)) return;
    }
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }
}
