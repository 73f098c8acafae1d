/** Starting one client run in its own process and reading its result line. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { RESULT_MARK, type ScenarioParams, type ScenarioResult } from './types.ts';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const PYTHON = process.env.BENCH_PYTHON ?? '/usr/bin/python3';
const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));
const PY_BENCH = fileURLToPath(new URL('./channels_redis_bench.py', import.meta.url));

/** Runs `argv` (prefixed by the pinning command) and returns the parsed result line. */
export function runChild(argv: string[], timeoutMs: number): Promise<ScenarioResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL'); // our own child, by its handle
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = stdout.split('\n').find((l) => l.startsWith(RESULT_MARK));
      if (line && code === 0) {
        resolve(JSON.parse(line.slice(RESULT_MARK.length)) as ScenarioResult);
        return;
      }
      const why = timedOut ? `timed out after ${timeoutMs / 1000} s` : `exit ${code ?? signal}`;
      const tail = stderr.trim().split('\n').slice(-6).join('\n');
      reject(new Error(`${why}${tail ? `:\n${tail}` : ''}`));
    });
  });
}

export function chanlayerArgv(pin: string[], p: ScenarioParams): string[] {
  // --expose-gc for the memory scenario; tsx as a loader so the worker imports lib/*.ts.
  return [...pin, process.execPath, '--expose-gc', '--import', 'tsx', WORKER, JSON.stringify(p)];
}

export function pythonArgv(pin: string[], p: ScenarioParams | '--versions'): string[] {
  return [...pin, PYTHON, PY_BENCH, typeof p === 'string' ? p : JSON.stringify(p)];
}
