// Creating an output directory (and its missing parents) one level at a time. Node's `mkdir(…, { recursive: true })`
// spins forever under /proc (it keeps retrying a level the kernel refuses); level by level, the first refusal is an
// error that names the directory: /proc/nope, /sys/nope (EPERM/ENOENT), an existing file in the way (EEXIST/ENOTDIR).
import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { FileAccessError } from '../core/errors.js';
import { describeFsError } from '../data/node-fs-errors.js';

/** Makes `dir` and its missing parents; `action` words the errors ('saving the model'). */
export async function makeDirs(dir: string, action: string): Promise<void> {
  const missing: string[] = [];
  for (let p = resolve(dir); ; p = dirname(p)) {
    let st;
    try { st = await stat(p); } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw describeFsError(p, e, action);
      missing.push(p);
      if (dirname(p) === p) break;
      continue;
    }
    if (!st.isDirectory()) throw new FileAccessError(`${p}: is a file, not a directory (while ${action}); choose another location`, { code: 'ENOTDIR' });
    break;
  }
  for (const d of missing.reverse()) {
    try { await mkdir(d); } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' && (await stat(d)).isDirectory()) continue;
      if (code === 'ENOENT') throw new FileAccessError(`${d}: cannot be created here (while ${action}); choose a location on a writable disk`, { cause: e, code });
      throw describeFsError(d, e, action);
    }
  }
}
