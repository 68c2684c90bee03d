// Shared test helpers. Tests run from the repository root (npm test), so fixture paths are cwd-relative.
import { join } from 'node:path';

export function fixturePath(...parts: string[]): string {
  return join(process.cwd(), 'test', 'fixtures', ...parts);
}
