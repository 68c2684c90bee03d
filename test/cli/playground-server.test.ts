// `llamatrain playground` under hostile options and folders: ports out of range and addresses that are not this
// machine's are usage errors (exit 2) naming the option; a symlink inside --dir never serves a file outside it;
// --dir naming a file says so; path traversal stays refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPlaygroundServer } from '../../src/cli/playground.js';
import { UsageError } from '../../src/cli/options.js';
import { runCli } from './helpers.js';

const site = () => {
  const dir = mkdtempSync(join(tmpdir(), 'llamatrain-pgs-'));
  mkdirSync(join(dir, 'site'));
  writeFileSync(join(dir, 'site', 'index.html'), '<!doctype html><p>hi</p>');
  writeFileSync(join(dir, 'secret.txt'), 'outside');
  return dir;
};

test('--port out of range: exit 2 naming --port (before: Node\'s own RangeError, exit 1)', async () => {
  for (const port of ['70000', '-1', '65536']) {
    const r = await runCli(['playground', `--port=${port}`]);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, new RegExp(`--port: must be in \\[0, 65535\\], got ${port}`));
  }
});

test('--host that is not this machine\'s or does not resolve: a usage error naming --host (before: raw EADDRNOTAVAIL / ENOTFOUND)', async () => {
  const dir = site();
  const r = await runCli(['playground', '--host=8.8.8.8', '--port=0', `--dir=${join(dir, 'site')}`]);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /--host 8\.8\.8\.8: this machine has no such address to listen on; use 127\.0\.0\.1/);
  await assert.rejects(startPlaygroundServer({ dir: join(dir, 'site'), host: '999.1.1.1', port: 0 }),
    (e: unknown) => e instanceof UsageError && /--host 999\.1\.1\.1: not an IP address \(each of the four numbers is 0–255\)/.test((e as Error).message));
});

test('--dir naming a file: said so (before: "the playground is not built")', async () => {
  const r = await runCli(['playground', '--dir=/etc/passwd', '--port=0']);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /--dir \/etc\/passwd: is a file, not a folder; give the folder that holds the built page/);
});

test('symlinks inside --dir are followed only to files inside it (before: a link served /etc/passwd); traversal stays refused', async () => {
  const dir = site();
  symlinkSync('/etc/passwd', join(dir, 'site', 'passwd'));
  symlinkSync(join(dir, 'secret.txt'), join(dir, 'site', 'secret.txt'));
  symlinkSync(join(dir), join(dir, 'site', 'up'));
  writeFileSync(join(dir, 'site', 'real.txt'), 'inside');
  symlinkSync(join(dir, 'site', 'real.txt'), join(dir, 'site', 'alias.txt'));
  const pg = await startPlaygroundServer({ dir: join(dir, 'site'), port: 0 });
  try {
    for (const p of ['passwd', 'secret.txt', 'up/secret.txt']) {
      const r = await fetch(`${pg.url}${p}`);
      assert.equal(r.status, 403, p);
      assert.doesNotMatch(await r.text(), /root:|outside/);
    }
    const alias = await fetch(`${pg.url}alias.txt`);
    assert.equal(alias.status, 200);
    assert.equal(await alias.text(), 'inside', 'a link to a file inside the folder is served');
    for (const p of ['/../../etc/passwd', '/%2e%2e%2f%2e%2e%2fetc%2fpasswd', '/..%2F..%2Fetc%2Fpasswd']) {
      const r = await fetch(`${pg.url.replace(/\/$/, '')}${p}`);
      assert.ok(r.status === 403 || r.status === 404, `${p}: ${r.status}`);
      assert.doesNotMatch(await r.text(), /root:/);
    }
  } finally {
    await pg.close();
  }
});
