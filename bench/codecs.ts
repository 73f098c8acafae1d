/**
 * Per-message CPU cost of the payload pipeline, side by side in one run (no Redis involved):
 *   1. serializers — chanlayer's msgpack codec vs @msgpack/msgpack vs msgpackr (records off),
 *      each also checked for byte-identity with ours (ours is checked against Python in tests);
 *   2. encryption — none vs Fernet vs secretbox through the core layer's Codec
 *      (serialize → encrypt → 12-byte prefix, and back), for 200 B and 64 KiB messages.
 *
 *   npx tsx bench/codecs.ts [--ms 400]
 *
 * msgpackr is not a dependency (its optional native add-on breaks `npm ci` with npm 11's lock
 * file); `npm i --no-save msgpackr` before running to include it.
 */
import { Decoder, Encoder } from '@msgpack/msgpack';
import { Codec } from '../lib/serde/codec.ts';
import { createCrypter } from '../lib/serde/crypter.ts';
import { decode, encode, msgpackSerializer } from '../lib/serde/msgpack.ts';

const budgetMs = Number(process.argv[process.argv.indexOf('--ms') + 1]) || 400;

function message(bytes: number): Record<string, unknown> {
  const base = { type: 'bench.msg', i: 12345, ok: true, ratio: 0.5, tags: ['a', 'b'] };
  const filler = bytes - encode({ ...base, payload: '' }).length - 3;
  return { ...base, payload: 'x'.repeat(Math.max(0, filler)) };
}

/** Median µs per call over 5 timed slices of budgetMs/5 each, after a warm-up slice. */
function measure(fn: () => unknown): number {
  const slice = budgetMs / 5;
  const run = (): number => {
    let n = 0;
    const start = performance.now();
    while (performance.now() - start < slice) {
      for (let i = 0; i < 50; i++) fn();
      n += 50;
    }
    return ((performance.now() - start) * 1000) / n;
  };
  run();
  const samples = Array.from({ length: 5 }, run).sort((a, b) => a - b);
  return samples[2]!;
}

const fmt = (us: number): string => (us < 10 ? us.toFixed(2) : us.toFixed(1)).padStart(9);

interface Packr {
  pack(v: unknown): Uint8Array;
  unpack(b: Uint8Array): unknown;
}

async function loadPackr(): Promise<Packr | undefined> {
  try {
    const name = 'msgpackr'; // a variable, so TypeScript does not need it installed
    const { Packr } = (await import(name)) as { Packr: new (o: object) => Packr };
    return new Packr({ useRecords: false, variableMapSize: true });
  } catch {
    console.log('(msgpackr not installed: npm i --no-save msgpackr to compare it too)');
    return undefined;
  }
}

async function serializers(): Promise<void> {
  const ours = { encode, decode };
  const mp = { enc: new Encoder(), dec: new Decoder() };
  const packr = await loadPackr();
  console.log('\nserializers: µs per encode / decode (same message), and bytes identical to ours');
  console.log(
    'size'.padEnd(8) +
      'library'.padEnd(26) +
      'encode'.padStart(9) +
      'decode'.padStart(9) +
      '  same bytes',
  );
  for (const size of [200, 64 * 1024]) {
    const m = message(size);
    const bytes = ours.encode(m);
    const rows: Array<[string, () => Uint8Array, (b: Uint8Array) => unknown]> = [
      ['chanlayer (lib/serde)', () => ours.encode(m), (b) => ours.decode(b)],
      ['@msgpack/msgpack 3', () => mp.enc.encode(m), (b) => mp.dec.decode(b)],
    ];
    if (packr) rows.push(['msgpackr (records off)', () => packr.pack(m), (b) => packr.unpack(b)]);
    for (const [name, enc, dec] of rows) {
      const mine = enc();
      const same = Buffer.compare(Buffer.from(mine), bytes) === 0;
      console.log(
        `${size === 200 ? '200 B' : '64 KiB'}`.padEnd(8) +
          name.padEnd(26) +
          fmt(measure(enc)) +
          fmt(measure(() => dec(mine))) +
          `  ${same ? 'yes' : 'NO'}`,
      );
    }
  }
}

function encryption(): void {
  const keys = ['bench-secret-1', 'bench-secret-0'];
  const codecs: Array<[string, Codec]> = [
    [
      'none',
      new Codec({ serializer: msgpackSerializer, prefixLength: 12, maxMessageBytes: 1 << 22 }),
    ],
    ...(['fernet', 'secretbox'] as const).map((name): [string, Codec] => [
      name,
      new Codec({
        serializer: msgpackSerializer,
        crypter: createCrypter({ keys, encryption: name, ttlSeconds: 70 }),
        prefixLength: 12,
        maxMessageBytes: 1 << 22,
      }),
    ]),
  ];
  console.log(
    '\nencryption: µs per message through the core Codec (serialize+encrypt+frame / reverse)',
  );
  console.log(
    'size'.padEnd(8) +
      'encryption'.padEnd(12) +
      'encode'.padStart(9) +
      'decode'.padStart(9) +
      'payload B'.padStart(11) +
      '  ×none (enc+dec)',
  );
  for (const size of [200, 64 * 1024]) {
    const m = message(size);
    let none = 0;
    for (const [name, codec] of codecs) {
      const payload = codec.encode(m);
      const enc = measure(() => codec.encode(m));
      const dec = measure(() => codec.decode(payload));
      if (name === 'none') none = enc + dec;
      console.log(
        `${size === 200 ? '200 B' : '64 KiB'}`.padEnd(8) +
          name.padEnd(12) +
          fmt(enc) +
          fmt(dec) +
          String(payload.length).padStart(11) +
          `  ${((enc + dec) / none).toFixed(1)}×`,
      );
    }
  }
}

await serializers();
encryption();
