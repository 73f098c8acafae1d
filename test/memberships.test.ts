/** ExpiringMemberships: adds, refreshes, expiry through the owner's callback, no timer left. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExpiringMemberships } from '../lib/memberships.ts';

describe('ExpiringMemberships', () => {
  it('add tells new from refreshed; a refresh moves the member last (expiry order)', () => {
    const m = new ExpiringMemberships(60_000, (g, c) => m.remove(g, c));
    assert.equal(m.add('g', 'a').added, true);
    assert.equal(m.add('g', 'b').added, true);
    assert.equal(m.add('g', 'a').added, false);
    assert.deepEqual([...m.members('g')!.keys()], ['b', 'a']);
    m.clear();
  });

  it('expireNow hands exactly the expired members to the owner, who removes them', async () => {
    const expired: string[] = [];
    const m = new ExpiringMemberships(30, (g, c) => {
      expired.push(`${g}/${c}`);
      m.remove(g, c);
    });
    m.add('g', 'old');
    await new Promise((r) => setTimeout(r, 40));
    m.add('g', 'new');
    m.expireNow('g');
    assert.deepEqual(expired, ['g/old']);
    assert.deepEqual([...m.members('g')!.keys()], ['new']);
    m.clear();
  });

  it('the sweeper expires members with nobody asking', async () => {
    let swept!: (member: string) => void;
    const gone = new Promise<string>((resolve) => (swept = resolve));
    const m = new ExpiringMemberships(20, (g, c) => {
      m.remove(g, c);
      swept(c);
    });
    // The sweeper's timer is unref'd (it never holds a process): hold this one meanwhile.
    const hold = setTimeout(() => {}, 10_000);
    m.add('g', 'a');
    assert.equal(await gone, 'a');
    clearTimeout(hold);
    assert.deepEqual(m.names(), []);
  });
});
