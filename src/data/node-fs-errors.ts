// Node-only (it reads the errno codes of Node's fs errors): how file errors are worded, shared by the data readers
// and writers (node-sources.ts) and the model/checkpoint files (io/files.ts; io may import data, data never io).
// A file of its own, importing only the error classes, so io/files.ts takes only this and not the data file readers.
import { FileAccessError } from '../core/errors.js';

/**
 * A file-system error as a message that names the file, what was being done and what to check, e.g.
 * `data.txt: no such file or directory (while reading text); check the path`. The original error is its `cause`.
 */
export function describeFsError(path: string, e: unknown, action: string): FileAccessError {
  const err = e as NodeJS.ErrnoException;
  const code = err.code;
  switch (err.code) {
    case 'ENOENT':
      return new FileAccessError(
        `${path}: no such file or directory (while ${action}); check the path` +
          (action.startsWith('writing') ? ' and that its directory exists' : ''),
        { cause: e, code },
      );
    case 'EISDIR':
      return new FileAccessError(`${path}: is a directory, expected a file (while ${action})`, { cause: e, code });
    case 'EACCES':
    case 'EPERM':
      return new FileAccessError(`${path}: permission denied (while ${action}); check the file's permissions`, { cause: e, code });
    case 'EROFS':
      return new FileAccessError(`${path}: read-only file system (while ${action}); choose a writable location`, { cause: e, code });
    case 'ENOSPC':
    case 'EDQUOT':
      return new FileAccessError(`${path}: no space left on the device (while ${action}); free some space or choose another location`, { cause: e, code });
    case 'ENOTDIR':
      return new FileAccessError(`${path}: a part of the path is a file, not a directory (while ${action}); check the path`, { cause: e, code });
    default:
      return new FileAccessError(`${path}: ${err.message} (while ${action})`, { cause: e, code });
  }
}

/** What a non-regular file is, in words ('a FIFO (named pipe)', 'a character device', …); null for a regular file. */
export function specialFileKind(s: { isFile(): boolean; isDirectory(): boolean; isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean }): string | null {
  if (s.isFile()) return null;
  return s.isDirectory() ? 'a directory' : s.isFIFO() ? 'a FIFO (named pipe)' : s.isCharacterDevice() ? 'a character device'
    : s.isBlockDevice() ? 'a block device' : s.isSocket() ? 'a socket' : 'not a regular file';
}

/**
 * Refuses anything but a regular file before it is opened: reading a FIFO without a writer blocks forever, and
 * /dev/zero or /dev/urandom never end.
 */
export function notRegularFileError(path: string, kind: string, action: string): FileAccessError {
  return new FileAccessError(`${path}: is ${kind}, not a regular file (while ${action}); give a data file saved on disk ` +
    '(a pipe or a device has no end that can be read up to)', { code: kind === 'a directory' ? 'EISDIR' : 'EINVAL' });
}
