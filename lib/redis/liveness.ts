/**
 * Liveness (README "Operations"): a core layer registers its process — the `…<clientPrefix>!`
 * part of its channels — in one sorted set per deployment, `${prefix}:processes`, scored with the
 * Redis server time of its last heartbeat (heartbeat.lua). Each heartbeat also brings back the
 * verdict: the client prefixes of registered processes silent for `deadAfterMs`. Group sends ask
 * `isDeadQueue` per queue and write nothing to a dead process's queue (the layer removes its
 * channels from the group). Only registered processes can be dead: channels of channels_redis or
 * older chanlayer processes, and normal channels, are never touched.
 *
 * - The heartbeat starts with the layer's first use that involves groups or process channels and
 *   runs every `heartbeatMs` on an unref'd timer (it never holds the process); `stop()` ends it.
 * - A verdict is used only while fresh (two heartbeats old at most): a process that cannot reach
 *   the registry, or was itself paused, has no proof of anyone's death and removes nothing.
 * - A process told it had been given up (paused past `deadAfterMs`: SIGSTOP, GC, VM freeze) puts
 *   back its memberships (`restore`) on that heartbeat and the next ones until every other
 *   process has heard it is alive again: a process judging on the verdict of its previous
 *   heartbeat may still remove one meanwhile.
 */
import type { Redis } from 'ioredis';
import { deadline } from '../deadline.ts';
import { heartbeatScript, type HeartbeatVerdict } from './script-calls.ts';

export interface LivenessOptions {
  heartbeatMs: number;
  deadAfterMs: number;
  /** Registered processes silent this long are forgotten: groupExpiry + deadAfter. */
  trimAfterMs: number;
}

export interface LivenessHooks {
  /** Runs `work` with the command client of the registry's shard. */
  onRegistry(work: (client: Redis) => Promise<HeartbeatVerdict>): Promise<HeartbeatVerdict>;
  /** Removes this process from the registry (ZREM). */
  leave(): Promise<void>;
  /** Puts back this process's memberships (it had been given up as dead). */
  restore(): Promise<void>;
  /** A heartbeat failure (reported once per run of failures). */
  report(err: unknown): void;
}

/**
 * The registry's name: placed like any name (its shard), and under the prefix its key. The ':'
 * keeps it apart from every channel key (channel names have none) and group key (`:group:`).
 */
export const REGISTRY_NAME = ':processes';

/** Longest wait for leaving the registry at close(). */
const LEAVE_MS = 500;

/**
 * The client prefix a queue's non-local name belongs to: `<anything>.P!` → P; undefined for a
 * normal channel's name (no '!'), which belongs to nobody.
 */
export function ownerOf(name: string): string | undefined {
  if (!name.endsWith('!')) return undefined;
  return name.slice(name.lastIndexOf('.', name.length - 2) + 1, -1);
}

export class Liveness {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private beating: Promise<void> | undefined;
  private dead: ReadonlySet<string> = new Set();
  /** Local time the current verdict's heartbeat was sent. */
  private judgedAt = Number.NEGATIVE_INFINITY;
  /** Heartbeats that still restore memberships after being told this process was given up. */
  private restoresLeft = 0;
  private failing = false;

  constructor(
    private readonly registry: string,
    private readonly client: string,
    private readonly opts: LivenessOptions,
    private readonly hooks: LivenessHooks,
  ) {}

  /** Registers now and keeps beating (idempotent; nothing after stop()). */
  start(): void {
    if (this.timer !== undefined || this.stopped) return;
    this.timer = setInterval(() => this.beat(), this.opts.heartbeatMs);
    this.timer.unref();
    this.beat();
  }

  /**
   * Ends the heartbeat and leaves the registry: a clean exit is not a death, and a closed process
   * leaves nothing behind. Skipped when the registry is not reachable (the last heartbeat failed),
   * and bounded by LEAVE_MS: close() stays prompt during an outage (the entry then goes the way of
   * a dead process's).
   */
  async stop(): Promise<void> {
    const joined = this.timer !== undefined;
    this.stopped = true;
    clearInterval(this.timer);
    if (!joined || this.failing) return;
    // After a heartbeat in flight, which would otherwise register this process again.
    const leaving = (this.beating ?? Promise.resolve()).then(() => this.hooks.leave());
    await deadline(leaving, LEAVE_MS, () => new Error('timeout')).catch(() => {});
  }

  /** Whether the queue of non-local name `name` belongs to a process known (freshly) dead. */
  isDeadQueue(name: string): boolean {
    if (this.dead.size === 0 || !this.fresh()) return false;
    const owner = ownerOf(name);
    return owner !== undefined && this.dead.has(owner);
  }

  private fresh(): boolean {
    return Date.now() - this.judgedAt <= 2 * this.opts.heartbeatMs;
  }

  private beat(): void {
    // One heartbeat at a time: a slow registry gets no pile of them.
    if (this.beating !== undefined) return;
    // When the script was sent: a heartbeat may have waited for a connection first.
    let sentAt = 0;
    this.beating = this.hooks
      .onRegistry((client) => {
        sentAt = Date.now();
        return heartbeatScript(client, {
          registry: this.registry,
          client: this.client,
          deadAfterMs: this.opts.deadAfterMs,
          trimAfterMs: this.opts.trimAfterMs,
        });
      })
      .then(
        (verdict) => this.judged(verdict, sentAt),
        (err: unknown) => {
          if (this.stopped || this.failing) return;
          this.failing = true;
          this.hooks.report(err);
        },
      )
      .finally(() => {
        this.beating = undefined;
      });
  }

  private judged(verdict: HeartbeatVerdict, sentAt: number): void {
    if (this.stopped) return;
    this.failing = false;
    this.dead = new Set(verdict.dead);
    this.judgedAt = sentAt;
    // Every other process hears of the return within one of its heartbeats: restore on this
    // one and the next two (a heartbeat period is the same everywhere only by convention).
    if (verdict.revived) this.restoresLeft = 3;
    if (this.restoresLeft > 0) {
      this.restoresLeft--;
      void this.hooks.restore();
    }
  }
}
