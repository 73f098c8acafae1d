/** Naming the place of a bad value inside a message: `message.items[3].when`. */

export type PathStep = string | number;

const IDENT = /^[A-Za-z_$][\w$]*$/;

export function formatPath(steps: readonly PathStep[]): string {
  let out = 'message';
  for (const step of steps) {
    if (typeof step === 'number') out += `[${step}]`;
    else out += IDENT.test(step) ? `.${step}` : `[${JSON.stringify(step)}]`;
  }
  return out;
}

export function unsupportedValue(steps: readonly PathStep[], what: string): TypeError {
  return new TypeError(`${formatPath(steps)} is ${what}, which a channel message cannot carry`);
}

export function isPlainObject(value: object): value is Record<string, unknown> {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** What a value is, for error messages: 'a function', 'an instance of Date', … */
export function describe(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return 'a symbol';
  if (typeof value === 'bigint') return 'a bigint';
  if (value !== null && typeof value === 'object') {
    const ctor = (Object.getPrototypeOf(value) as { constructor?: { name?: string } } | null)
      ?.constructor?.name;
    return ctor ? `an instance of ${ctor}` : 'an object with a foreign prototype';
  }
  return `a ${typeof value}`;
}
