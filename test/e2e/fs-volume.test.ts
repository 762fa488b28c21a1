/** cp reaches a container's volumes and binds: what it writes there is in the volume, not under it in the rootfs. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startDaemon, loadTestImages, type Daemon } from '../harness.js';

let d: Daemon;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cp-vol-'));

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
});

after(async () => {
  await d?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function ok(p: Promise<{ code: number; stdout: string; stderr: string }>): Promise<string> {
  const r = await p;
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

test('docker cp into a named volume lands in the volume; out of a stopped container reads it back; a ro bind refuses', { timeout: 120_000 }, async () => {
  fs.writeFileSync(path.join(tmp, 'note.txt'), 'in the volume\n');
  await ok(d.docker(['create', '--name', 'holder', '-v', 'shared:/data', 'busybox', 'true']));
  await ok(d.docker(['cp', path.join(tmp, 'note.txt'), 'holder:/data/note.txt']));
  // Another container with the same volume sees it: the copy went into the volume.
  assert.equal(await ok(d.docker(['run', '--rm', '-v', 'shared:/v', 'busybox', 'cat', '/v/note.txt'])), 'in the volume\n');
  await ok(d.docker(['cp', 'holder:/data/note.txt', path.join(tmp, 'back.txt')]));
  assert.equal(fs.readFileSync(path.join(tmp, 'back.txt'), 'utf8'), 'in the volume\n');

  const src = path.join(tmp, 'bindsrc');
  fs.mkdirSync(src);
  await ok(d.docker(['create', '--name', 'robind', '-v', `${src}:/b:ro`, 'busybox', 'true']));
  const refused = await d.docker(['cp', path.join(tmp, 'note.txt'), 'robind:/b/x.txt']);
  assert.notEqual(refused.code, 0, 'cp wrote into a read-only bind');
  assert.equal(fs.existsSync(path.join(src, 'x.txt')), false);
  await ok(d.docker(['rm', 'holder', 'robind']));
  await ok(d.docker(['volume', 'rm', 'shared']));
});
