/**
 * Group memberships kept in this process (in-memory and Pub/Sub layers), each expiring `ttlMs`
 * after its last add, as a member's score does in a channels_redis group. A re-add moves the
 * member to the end of its group's Map (expiry order). While any group exists a timer
 * (unref'd: it never holds the process) hands expired members to `expire`, which must remove
 * them — the owner also undoes what the membership held (Pub/Sub unsubscribes).
 */
export class ExpiringMemberships {
  private readonly groups = new Map<string, Map<string, number>>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly ttlMs: number,
    private readonly expire: (group: string, member: string) => void,
  ) {}

  /** Adds `member` to `group`, or refreshes its expiry. `added`: it was not a member before. */
  add(group: string, member: string): { expiresAt: number; added: boolean } {
    let members = this.groups.get(group);
    if (!members) {
      members = new Map();
      this.groups.set(group, members);
    }
    const added = !members.delete(member);
    const expiresAt = Date.now() + this.ttlMs;
    members.set(member, expiresAt);
    this.startSweeper();
    return { expiresAt, added };
  }

  /** Removes one membership; whether there was one. */
  remove(group: string, member: string): boolean {
    const members = this.groups.get(group);
    if (!members?.delete(member)) return false;
    if (members.size === 0) this.groups.delete(group);
    if (this.groups.size === 0) this.stopSweeper();
    return true;
  }

  /** `member`'s memberships in every group, removed. */
  removeEverywhere(member: string): void {
    for (const group of [...this.groups.keys()]) this.remove(group, member);
  }

  /** A group's members and their expiry times; expired ones stay until handed to `expire`. */
  members(group: string): ReadonlyMap<string, number> | undefined {
    return this.groups.get(group);
  }

  /** A group's members whose membership has not expired, in expiry order. */
  live(group: string, now = Date.now()): string[] {
    const live: string[] = [];
    for (const [member, expiresAt] of this.groups.get(group) ?? [])
      if (expiresAt > now) live.push(member);
    return live;
  }

  /** The groups with at least one member. */
  names(): string[] {
    return [...this.groups.keys()];
  }

  /** Hands `group`'s expired members to `expire` now (before a send reads the group). */
  expireNow(group: string, now = Date.now()): void {
    const members = this.groups.get(group);
    if (!members) return;
    // Deleting from a Map while iterating it is safe (`expire` removes synchronously).
    for (const [member, expiresAt] of members) if (expiresAt <= now) this.expire(group, member);
  }

  clear(): void {
    this.stopSweeper();
    this.groups.clear();
  }

  private startSweeper(): void {
    if (this.sweeper) return;
    const every = Math.min(Math.max(this.ttlMs, 50), 60_000);
    this.sweeper = setInterval(() => {
      const now = Date.now();
      for (const group of [...this.groups.keys()]) this.expireNow(group, now);
    }, every);
    this.sweeper.unref();
  }

  private stopSweeper(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
  }
}
