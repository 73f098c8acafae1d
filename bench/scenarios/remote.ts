/** Starting the ponger process of a cross-process ping-pong and waiting for its channel. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { PONGER_READY, type PongerParams } from '../types.ts';
import type { RemotePonger } from './pingpong.ts';

const PONGER = fileURLToPath(new URL('../ponger.ts', import.meta.url));

/**
 * Spawns bench/ponger.ts with this process's Node flags (so the same loader; and the same CPU
 * affinity, inherited) and resolves once it has named its channel. Its stdin stays open as a
 * lifeline: the ponger exits when this process does.
 */
export function startPonger(p: PongerParams): Promise<RemotePonger> {
  const child = spawn(process.execPath, [...process.execArgv, PONGER, JSON.stringify(p)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`ponger exit ${code ?? signal}: ${stderr.trim().slice(-600)}`));
    });
  });
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer): void => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith(PONGER_READY));
      if (!line || !out.includes('\n', out.indexOf(PONGER_READY))) return;
      child.stdout.off('data', onData);
      child.stdout.resume();
      resolve({ channel: line.slice(PONGER_READY.length).trim(), done });
    };
    child.stdout.on('data', onData);
    done.then(() => reject(new Error('ponger exited before naming its channel')), reject);
  });
}
