/** SCAN over a prefix's keys (never KEYS): shared by the layer's flush and the CLI. */

/** SCAN MATCH pattern for every key that starts with `prefix` (glob characters escaped). */
export function prefixPattern(prefix: string): string {
  return `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
}
