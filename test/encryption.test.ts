/**
 * Encryption: Fernet against the real Python peer (cryptography + channels_redis 4.0 on
 * /usr/bin/python3), golden vectors, TTL rules; NaCl secretbox; createCrypter validation.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encode, decode } from '@msgpack/msgpack';
import nacl from 'tweetnacl';
import { ConfigurationError, UnreadablePayload } from '../lib/errors.ts';
import { createCrypter } from '../lib/serde/crypter.ts';
import { Fernet, MAX_CLOCK_SKEW } from '../lib/serde/fernet.ts';
import { Secretbox, deriveSecretboxKey } from '../lib/serde/secretbox.ts';

const PYTHON = '/usr/bin/python3';

/**
 * Runs Python with channels_redis's exact key derivation in scope (`make_fernet`, MultiFernet)
 * and `args` (JSON) as `A`; the script prints one JSON value as its last act.
 */
function py<T>(body: string, args: unknown): T {
  const prelude = `
import base64, hashlib, json, sys, time
from cryptography.fernet import Fernet, MultiFernet, InvalidToken
from channels_redis.core import RedisChannelLayer
make_fernet = RedisChannelLayer(symmetric_encryption_keys=["unused"]).make_fernet
def multi(secrets): return MultiFernet([make_fernet(s) for s in secrets])
A = json.load(sys.stdin)
`;
  const out = execFileSync(PYTHON, ['-c', prelude + body], {
    input: JSON.stringify(args),
    encoding: 'utf8',
  });
  return JSON.parse(out) as T;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const ascii = (b: Uint8Array): string => Buffer.from(b).toString('latin1');
const nowSeconds = (): number => Math.floor(Date.now() / 1000);

const OLD = 'old secret ☃';
const NEW = 'new secret';

describe('Fernet golden vectors (scripts/gen-fernet-vectors.py)', () => {
  const fixture = JSON.parse(
    readFileSync(new URL('./fixtures/fernet-vectors.json', import.meta.url), 'utf8'),
  ) as {
    vectors: { secret: string; time: number; iv: string; plaintext: string; token: string }[];
  };

  it('has vectors', () => assert.ok(fixture.vectors.length >= 5));

  for (const [i, v] of fixture.vectors.entries()) {
    it(`vector ${i}: same token from the same time and IV, and it decrypts`, () => {
      const f = new Fernet([v.secret]);
      const plain = Buffer.from(v.plaintext, 'hex');
      const token = f.encryptAt(plain, v.time, Buffer.from(v.iv, 'hex'));
      assert.ok(Buffer.isBuffer(token));
      assert.equal(ascii(token), v.token);
      assert.equal(hex(f.decrypt(Buffer.from(v.token, 'latin1'))), v.plaintext);
    });
  }
});

describe('Fernet interop with Python', () => {
  it('decrypts tokens made by channels_redis (serialize, random prefix stripped)', () => {
    const messages = [{ type: 'chat.message', text: 'héllo', n: 42 }, { type: 'x' }];
    const made = py<string[]>(
      `
layer = RedisChannelLayer(symmetric_encryption_keys=A["keys"])
print(json.dumps([layer.serialize(m).hex() for m in A["messages"]]))
`,
      { keys: [NEW], messages },
    );
    const fernet = new Fernet([NEW], 70);
    made.forEach((h, i) => {
      const stored = Buffer.from(h, 'hex');
      const token = stored.subarray(12); // channels_redis adds 12 random bytes after encrypting
      assert.match(ascii(token), /^gAAAAA[A-Za-z0-9_-]+=*$/);
      assert.deepEqual(decode(fernet.decrypt(token)), messages[i]);
    });
  });

  it('Node tokens are read by channels_redis deserialize (with its expiry + 10 TTL)', () => {
    const fernet = new Fernet([NEW]);
    const messages = [
      { type: 'a', body: 'x'.repeat(1000) },
      { type: 'b', list: [1, 2, 3] },
    ];
    const stored = messages.map((m) =>
      hex(Buffer.concat([randomBytes(12), fernet.encrypt(encode(m))])),
    );
    const back = py<unknown[]>(
      `
layer = RedisChannelLayer(symmetric_encryption_keys=A["keys"])
print(json.dumps([layer.deserialize(bytes.fromhex(h)) for h in A["stored"]]))
`,
      { keys: [NEW], stored },
    );
    assert.deepEqual(back, messages);
  });

  it('rotation, Python → Node: MultiFernet([OLD, …]) token, Node has OLD only second', () => {
    const [token] = py<string[]>(
      `print(json.dumps([multi(A["keys"]).encrypt(b"rotated").decode()]))`,
      { keys: [OLD, 'another'] },
    );
    const node = new Fernet([NEW, OLD]);
    assert.equal(ascii(node.decrypt(Buffer.from(token!))), 'rotated');
    assert.throws(() => new Fernet([NEW]).decrypt(Buffer.from(token!)), UnreadablePayload);
  });

  it('rotation, Node → Python: Node [NEW, OLD] encrypts with NEW; Python [OLD, NEW] reads it', () => {
    const token = ascii(new Fernet([NEW, OLD]).encrypt(Buffer.from('to python')));
    const out = py<{ multi: string; oldOnly: string }>(
      `
t = A["token"].encode()
res = {"multi": multi(A["keys"]).decrypt(t, 60).decode()}
try:
    make_fernet(A["old"]).decrypt(t); res["oldOnly"] = "opened"
except InvalidToken:
    res["oldOnly"] = "InvalidToken"
print(json.dumps(res))
`,
      { token, keys: [OLD, NEW], old: OLD },
    );
    assert.deepEqual(out, { multi: 'to python', oldOnly: 'InvalidToken' });
  });

  it('TTL: a Python token stamped 1000 s ago (encrypt_at_time) is refused with ttl 70', () => {
    const [token] = py<string[]>(
      `print(json.dumps([make_fernet(A["key"]).encrypt_at_time(b"stale", int(time.time()) - 1000).decode()]))`,
      { key: NEW },
    );
    const bytes = Buffer.from(token!);
    assert.throws(() => new Fernet([NEW], 70).decrypt(bytes), UnreadablePayload);
    assert.throws(() => new Fernet([NEW], 70).decrypt(bytes), /expired/);
    assert.equal(ascii(new Fernet([NEW]).decrypt(bytes)), 'stale'); // no TTL: no age check
    assert.equal(ascii(new Fernet([NEW], 2000).decrypt(bytes)), 'stale');
  });

  it('TTL and clock-skew boundaries match cryptography decrypt_at_time exactly', () => {
    const stamp = 1_700_000_000;
    const ttl = 70;
    const token = ascii(new Fernet([NEW]).encryptAt(Buffer.from('t'), stamp, Buffer.alloc(16, 7)));
    const nows = [
      stamp + ttl - 1,
      stamp + ttl,
      stamp + ttl + 1,
      stamp,
      stamp - MAX_CLOCK_SKEW,
      stamp - MAX_CLOCK_SKEW - 1,
    ];
    const python = py<boolean[]>(
      `
f = make_fernet(A["key"])
def ok(now):
    try:
        f.decrypt_at_time(A["token"].encode(), A["ttl"], now); return True
    except InvalidToken:
        return False
print(json.dumps([ok(n) for n in A["nows"]]))
`,
      { key: NEW, token, ttl, nows },
    );
    assert.deepEqual(python, [true, true, false, true, true, false]);
    const node = nows.map((now) => {
      try {
        new Fernet([NEW], ttl).decryptAt(Buffer.from(token), now);
        return true;
      } catch (err) {
        assert.ok(err instanceof UnreadablePayload);
        return false;
      }
    });
    assert.deepEqual(node, python);
  });

  it('a token stamped in the future (beyond 60 s skew) is refused when a TTL is set', () => {
    const future = new Fernet([NEW]).encryptAt(
      Buffer.from('f'),
      nowSeconds() + 3600,
      randomBytes(16),
    );
    assert.throws(() => new Fernet([NEW], 70).decrypt(future), /future/);
  });
});

describe('Fernet rejects bad tokens', () => {
  const fernet = new Fernet([NEW], 70);
  const token = fernet.encrypt(Buffer.from('some message that spans blocks'));

  it('wrong key → UnreadablePayload naming no key material', () => {
    assert.throws(
      () => new Fernet(['wrong'], 70).decrypt(token),
      (err: unknown) =>
        err instanceof UnreadablePayload &&
        !err.message.includes('wrong') &&
        !err.message.includes(NEW),
    );
  });

  it('any flipped byte of the decoded token is caught', () => {
    const raw = Buffer.from(ascii(token), 'base64url');
    for (let i = 0; i < raw.length; i++) {
      const bad = Buffer.from(raw);
      bad[i]! ^= 0x01;
      assert.throws(
        () => fernet.decrypt(Buffer.from(bad.toString('base64url'))),
        UnreadablePayload,
        `byte ${i}`,
      );
    }
  });

  it('a changed base64 character is caught', () => {
    const s = ascii(token);
    const mid = Math.floor(s.length / 2);
    const bad = s.slice(0, mid) + (s[mid] === 'A' ? 'B' : 'A') + s.slice(mid + 1);
    assert.throws(() => fernet.decrypt(Buffer.from(bad)), UnreadablePayload);
  });

  it('truncated, empty, garbage and wrong-version input', () => {
    const s = ascii(token);
    for (const bad of [
      s.slice(0, 40),
      s.slice(0, -4),
      '',
      'not base64 at all!',
      'AAAA',
      s.replace(/^g/, 'A'),
    ]) {
      assert.throws(() => fernet.decrypt(Buffer.from(bad)), UnreadablePayload, JSON.stringify(bad));
    }
  });

  it('accepts tokens with and without base64 padding; emits padding like cryptography', () => {
    for (const len of [0, 1, 2, 3, 15, 16, 17, 100]) {
      const plain = randomBytes(len);
      const t = ascii(fernet.encrypt(plain));
      assert.equal(t.length % 4, 0);
      assert.deepEqual(fernet.decrypt(Buffer.from(t.replace(/=+$/, ''))), plain);
      assert.deepEqual(fernet.decrypt(Buffer.from(t)), plain);
    }
  });

  it('decrypts a Uint8Array view into a larger buffer (offset, not a copy)', () => {
    const stored = Buffer.concat([randomBytes(12), token]);
    const view = new Uint8Array(stored.buffer, stored.byteOffset + 12, token.length);
    assert.equal(ascii(fernet.decrypt(view)), 'some message that spans blocks');
  });

  it('IVs from the pooled random source never repeat (several pool refills)', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      seen.add(
        Buffer.from(ascii(fernet.encrypt(Buffer.alloc(0))), 'base64url').toString('hex', 9, 25),
      );
    }
    assert.equal(seen.size, 2000);
  });

  it('large messages round-trip (4 MiB)', () => {
    const big = randomBytes(4 * 1024 * 1024);
    assert.ok(fernet.decrypt(fernet.encrypt(big)).equals(big));
  });
});

describe('Secretbox', () => {
  const box = new Secretbox([NEW]);

  it('round-trips, including empty and large payloads', () => {
    for (const len of [0, 1, 31, 32, 33, 1000, 1 << 20]) {
      const plain = randomBytes(len);
      const token = box.encrypt(plain);
      assert.equal(token.length, len + 41);
      assert.equal(token[0], 0x01);
      assert.ok(Buffer.from(box.decrypt(token)).equals(plain));
    }
  });

  it('is exactly tweetnacl secretbox: 0x01 | nonce | nacl.secretbox(plain, nonce, sha256(secret))', () => {
    const key = deriveSecretboxKey(NEW);
    const plain = Buffer.from('interop with plain tweetnacl');
    const nonce = randomBytes(24);
    const ours = box.encryptWithNonce(plain, nonce);
    const theirs = nacl.secretbox(plain, nonce, key);
    assert.deepEqual(hex(ours), '01' + hex(nonce) + hex(theirs));
    assert.equal(
      ascii(nacl.secretbox.open(ours.subarray(25), ours.subarray(1, 25), key)!),
      ascii(plain),
    );
    // and a token assembled from tweetnacl's output opens with ours
    const n2 = randomBytes(24);
    const built = Buffer.concat([Buffer.from([1]), n2, nacl.secretbox(plain, n2, key)]);
    assert.ok(Buffer.from(box.decrypt(built)).equals(plain));
  });

  it('fresh random nonce each time', () => {
    const a = box.encrypt(Buffer.from('same'));
    const b = box.encrypt(Buffer.from('same'));
    assert.notDeepEqual(a.subarray(1, 25), b.subarray(1, 25));
  });

  it('rotation: first key encrypts, old key still decrypts in second position', () => {
    const oldToken = new Secretbox([OLD]).encrypt(Buffer.from('old'));
    const rotated = new Secretbox([NEW, OLD]);
    assert.equal(ascii(rotated.decrypt(oldToken)), 'old');
    const newToken = rotated.encrypt(Buffer.from('new'));
    assert.equal(ascii(new Secretbox([NEW]).decrypt(newToken)), 'new');
    assert.throws(() => new Secretbox([OLD]).decrypt(newToken), UnreadablePayload);
  });

  it('wrong key → UnreadablePayload', () => {
    assert.throws(
      () => new Secretbox(['wrong']).decrypt(box.encrypt(Buffer.from('x'))),
      UnreadablePayload,
    );
  });

  it('any flipped byte (version, nonce, tag, ciphertext) is caught; caller bytes untouched', () => {
    const token = box.encrypt(Buffer.from('tamper me please'));
    const copy = Buffer.from(token);
    box.decrypt(token);
    assert.ok(token.equals(copy));
    for (let i = 0; i < token.length; i++) {
      const bad = Buffer.from(token);
      bad[i]! ^= 0x80;
      assert.throws(() => box.decrypt(bad), UnreadablePayload, `byte ${i}`);
    }
  });

  it('short or empty tokens, and Fernet tokens, are UnreadablePayload', () => {
    const token = box.encrypt(Buffer.from('x'));
    for (const bad of [Buffer.alloc(0), token.subarray(0, 40), token.subarray(0, 25)]) {
      assert.throws(() => box.decrypt(bad), UnreadablePayload);
    }
    assert.throws(
      () => box.decrypt(new Fernet([NEW]).encrypt(Buffer.from('x'))),
      UnreadablePayload,
    );
  });
});

describe('createCrypter', () => {
  it('defaults to Fernet (channels_redis tokens); secretbox on request', () => {
    const fernet = createCrypter({ keys: [NEW] });
    assert.match(ascii(fernet.encrypt(Buffer.from('x'))), /^gAAAAA/);
    const sb = createCrypter({ keys: [NEW], encryption: 'secretbox' });
    assert.equal(sb.encrypt(Buffer.from('x'))[0], 0x01);
    assert.equal(ascii(sb.decrypt(sb.encrypt(Buffer.from('y')))), 'y');
  });

  it('passes ttlSeconds to Fernet', () => {
    const old = new Fernet([NEW]).encryptAt(Buffer.from('x'), nowSeconds() - 100, randomBytes(16));
    assert.throws(
      () => createCrypter({ keys: [NEW], ttlSeconds: 70 }).decrypt(old),
      UnreadablePayload,
    );
    assert.equal(ascii(createCrypter({ keys: [NEW], ttlSeconds: 200 }).decrypt(old)), 'x');
  });

  const SECRET = 'top-secret-value-987654';
  const bad: [string, unknown, RegExp][] = [
    ['empty list', { keys: [] }, /at least one/],
    ['bare string', { keys: SECRET }, /list of secrets, not a string/],
    ['missing keys', {}, /list of secrets, got undefined/],
    [
      'non-string key',
      { keys: [SECRET, 987654] },
      /symmetricEncryptionKeys\[1\] must be a string, got number/,
    ],
    [
      'Buffer key',
      { keys: [Buffer.from(SECRET)] },
      /symmetricEncryptionKeys\[0\] must be a string, got Buffer/,
    ],
    ['empty-string key', { keys: [SECRET, ''] }, /symmetricEncryptionKeys\[1\] is an empty string/],
    [
      'unknown encryption',
      { keys: [SECRET], encryption: 'aes-gcm' },
      /Unknown encryption "aes-gcm"/,
    ],
    [
      'bad ttl',
      { keys: [SECRET], ttlSeconds: -1 },
      /ttlSeconds must be a non-negative number, got -1/,
    ],
  ];
  for (const [name, opts, message] of bad) {
    it(`ConfigurationError: ${name}, without key material in the message`, () => {
      assert.throws(
        () => createCrypter(opts as Parameters<typeof createCrypter>[0]),
        (err: unknown) => {
          assert.ok(err instanceof ConfigurationError, String(err));
          assert.match(err.message, message);
          assert.ok(!err.message.includes(SECRET) && !err.message.includes('987654'), err.message);
          return true;
        },
      );
    });
  }
});
