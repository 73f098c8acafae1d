#!/usr/bin/env node
/**
 * The `chanlayer` command (package.json `bin`): `chanlayer inspect` and `chanlayer top`
 * (lib/cli/). Exit status: 0 fine, 1 a shard could not be read, 2 bad arguments or
 * configuration. The process ends by itself once every connection is closed (no forced exit).
 */
import { parseCli, USAGE } from './cli/args.ts';
import { inspect } from './cli/inspect.ts';
import { top } from './cli/top.ts';
import { ConfigurationError, errorMessage } from './errors.ts';

const width = (): number => process.stdout.columns || 80;

async function main(argv: string[]): Promise<number> {
  let opts;
  try {
    opts = parseCli(argv);
  } catch (err) {
    if (!(err instanceof ConfigurationError)) throw err;
    process.stderr.write(`chanlayer: ${err.message}\n\n${USAGE}\n`);
    return 2;
  }
  if (opts.command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  return opts.command === 'inspect' ? inspect(opts, width()) : top(opts, width);
}

main(process.argv.slice(2)).then(
  (status) => {
    process.exitCode = status;
  },
  (err: unknown) => {
    process.stderr.write(`chanlayer: ${errorMessage(err)}\n`);
    process.exitCode = 1;
  },
);
