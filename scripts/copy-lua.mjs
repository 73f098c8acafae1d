// Lua scripts (and the files they `@include`, lib/scripts/includes/) ship next to the compiled
// JS so `lib/redis/scripts.ts` finds them at run time.
import { cpSync, existsSync, mkdirSync } from 'node:fs';

if (existsSync('lib/scripts')) {
  mkdirSync('dist/scripts', { recursive: true });
  cpSync('lib/scripts', 'dist/scripts', { recursive: true });
}
