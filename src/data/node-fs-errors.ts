// Node-only (it reads the errno codes of Node's fs errors): how file errors are worded, shared by the data readers
// and writers (node-sources.ts) and the model/checkpoint files (io/files.ts; io may import data, data never io).
// A file of its own, importing nothing, so io/files.ts takes only this and not the data file readers.

/**
 * A file-system error as a message that names the file, what was being done and what to check, e.g.
 * `data.txt: no such file or directory (while reading text); check the path`. The original error is its `cause`.
 */
export function describeFsError(path: string, e: unknown, action: string): Error {
  const err = e as NodeJS.ErrnoException;
  switch (err.code) {
    case 'ENOENT':
      return new Error(
        `${path}: no such file or directory (while ${action}); check the path` +
          (action.startsWith('writing') ? ' and that its directory exists' : ''),
        { cause: e },
      );
    case 'EISDIR':
      return new Error(`${path}: is a directory, expected a file (while ${action})`, { cause: e });
    case 'EACCES':
    case 'EPERM':
      return new Error(`${path}: permission denied (while ${action}); check the file's permissions`, { cause: e });
    case 'EROFS':
      return new Error(`${path}: read-only file system (while ${action}); choose a writable location`, { cause: e });
    case 'ENOSPC':
    case 'EDQUOT':
      return new Error(`${path}: no space left on the device (while ${action}); free some space or choose another location`, { cause: e });
    case 'ENOTDIR':
      return new Error(`${path}: a part of the path is a file, not a directory (while ${action}); check the path`, { cause: e });
    default:
      return new Error(`${path}: ${err.message} (while ${action})`, { cause: e });
  }
}
