/** groupQueues: a group's members (as Redis returns them, bytes) by the channel key they share. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { groupQueues } from '../lib/redis/group-queues.ts';
import { nonLocalName } from '../lib/names.ts';

/** The grouping by strings, as docs/wire-protocol.md states it. */
function expected(members: string[]): Array<[string, string[]]> {
  const out = new Map<string, string[]>();
  for (const m of members) out.set(nonLocalName(m), [...(out.get(nonLocalName(m)) ?? []), m]);
  return [...out];
}

function grouped(members: string[]): Array<[string, string[]]> {
  return [...groupQueues(members.map((m) => Buffer.from(m)))].map(([name, channels]) => [
    name,
    channels.map(String),
  ]);
}

describe('groupQueues', () => {
  it('groups by non-local name, in member order, names first seen first', () => {
    const members = [
      'specific.aa!1',
      'specific.aa!2',
      'plain',
      'specific.bb!1',
      'specific.aa!3', // back to an earlier queue
      'specific.aa', // a normal channel that is the `…!` name minus its '!'
      'specific.aa!', // empty local part
      'specific.aa!x!y', // a second '!' belongs to the local part
      'plain!x', // a `…!` queue whose name starts like a normal channel
      'plainer', // a normal channel that starts like the previous one
      'plain',
    ];
    assert.deepEqual(grouped(members), expected(members));
    assert.deepEqual(
      grouped(members).map(([name]) => name),
      ['specific.aa!', 'plain', 'specific.bb!', 'specific.aa', 'plain!', 'plainer'],
    );
  });

  it('keeps non-ASCII names whole', () => {
    const members = ['grüße.é!1', 'grüße.é!2', 'grüße.e!1'];
    assert.deepEqual(grouped(members), expected(members));
  });

  it('skips a member whose bytes are not UTF-8 (it would make the message undecodable for Python)', () => {
    const bad = Buffer.concat([Buffer.from('specific.aa!'), Buffer.from([0xff])]);
    const queues = groupQueues([Buffer.from('specific.aa!1'), bad, Buffer.from('specific.aa!2')]);
    assert.deepEqual(
      [...queues].map(([name, channels]) => [name, channels.map(String)]),
      [['specific.aa!', ['specific.aa!1', 'specific.aa!2']]],
    );
  });

  it('no members, no queues', () => {
    assert.equal(groupQueues([]).size, 0);
  });
});
