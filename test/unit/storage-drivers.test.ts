/**
 * Driver selection and the pieces around the drivers that the conformance file does not reach:
 * chooseDriver's order, the refused drivers, `--storage-opt` parsing, and the walking differ on what
 * overlay never shows it (hard links, xattrs, a symlink retargeted at the same length).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { InvalidParameter } from '../../src/errors.js';
import Database from 'better-sqlite3';
import { openSnapshotter, prepareOptionsOf } from '../../src/storage/index.js';
import { makeLoopFs } from '../loopfs.js';
import { checkDriverName, chooseDriver } from '../../src/storage/registry.js';
import { walkChanges } from '../../src/storage/changes.js';
import * as sys from '../../src/sys/index.js';

let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-drivers-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const T = { timeout: 30_000 };

describe('chooseDriver', () => {
  it('takes overlay2 where the kernel mounts overlays, and a driver that already has data first', T, () => {
    const root = fs.mkdtempSync(path.join(tmp, 'root-'));
    assert.deepEqual(chooseDriver(root).name, 'overlay2');
    assert.match(chooseDriver(root).reason, /the kernel mounts overlays on /);
    assert.deepEqual(fs.readdirSync(root), [], 'the overlay probe is gone');
    // Empty folders a driver makes when opened are not data; a layer is.
    fs.mkdirSync(path.join(root, 'vfs', 'dir'), { recursive: true });
    fs.mkdirSync(path.join(root, 'overlay2', 'l'), { recursive: true });
    assert.equal(chooseDriver(root).name, 'overlay2');
    fs.mkdirSync(path.join(root, 'vfs', 'dir', 'abc'));
    assert.deepEqual(chooseDriver(root), { name: 'vfs', reason: `prior storage driver: ${path.join(root, 'vfs')} holds its data` });
    // Two drivers with data: no prior one stands out.
    fs.symlinkSync('../x/diff', path.join(root, 'overlay2', 'l', 'SHORT'));
    assert.equal(chooseDriver(root).name, 'overlay2');
  });

  it('names what a refused driver needs', T, () => {
    assert.throws(() => checkDriverName('devicemapper'), (e: Error) => e instanceof InvalidParameter && /dm_thin_pool/.test(e.message));
    assert.throws(() => checkDriverName('zfs'), /zfs needs the zfs kernel module/);
    assert.throws(() => checkDriverName('aufs'), /aufs needs the out-of-tree aufs kernel module/);
    assert.throws(() => checkDriverName('overlay'), /driver not supported: overlay \(supported: overlay2, vfs, btrfs, fuse-overlayfs\)/);
    for (const d of ['overlay2', 'vfs', 'btrfs', 'fuse-overlayfs']) checkDriverName(d);
  });
});

describe('--storage-opt', () => {
  it('size= in go-units binary sizes; any other key or a bad size is refused', T, () => {
    assert.deepEqual(prepareOptionsOf({ size: '64m' }), { size: 64 * 2 ** 20 });
    assert.deepEqual(prepareOptionsOf({ size: '1.5G' }), { size: 1.5 * 2 ** 30 });
    assert.deepEqual(prepareOptionsOf({ size: '4096' }), { size: 4096 });
    assert.deepEqual(prepareOptionsOf(undefined), {});
    assert.throws(() => prepareOptionsOf({ size: 'lots' }), /invalid size: 'lots'/);
    assert.throws(() => prepareOptionsOf({ size: '0' }), /invalid size/);
    assert.throws(() => prepareOptionsOf({ inodes: '10' }), /Unknown option inodes/);
  });
});

async function changes(lower: string, upper: string, since: bigint | null = null): Promise<string[]> {
  const out: string[] = [];
  for await (const c of walkChanges(lower, upper, since)) out.push(`${c.whiteout ? 'D' : 'W'} ${c.name}`);
  return out;
}

describe('storage-opts (daemon-wide)', () => {
  it('overlay2.size is refused with where the data root stands; unknown keys are refused by name', T, () => {
    const db = new Database(':memory:');
    try {
      assert.throws(() => openSnapshotter('overlay2', path.join(tmp, 'o'), db, { options: ['overlay2.size=10G'] }),
        /overlay2: Storage option overlay2.size not supported: it needs xfs mounted with pquota \(.* is on \w+\)/);
      assert.throws(() => openSnapshotter('vfs', path.join(tmp, 'o'), db, { options: ['vfs.size=1G'] }), /vfs: unknown option vfs.size/);
      assert.throws(() => openSnapshotter('overlay2', path.join(tmp, 'o'), db, { options: ['size=1G'] }), /overlay2: unknown option size/);
    } finally {
      db.close();
    }
  });

  it('btrfs.min_space: a container size below it is refused and leaves nothing', { timeout: 60_000 }, async () => {
    const loop = makeLoopFs('btrfs', 512);
    const db = new Database(':memory:');
    try {
      const s = openSnapshotter('btrfs', loop.dir, db, { options: ['btrfs.min_space=100m'] });
      await assert.rejects(s.prepare('small', null, { size: 64 << 20 }), /btrfs: storage size cannot be less than 104857600 bytes/);
      assert.deepEqual(s.walk(), []);
      assert.deepEqual(fs.readdirSync(path.join(loop.dir, 'btrfs', 'subvolumes')), []);
      await s.prepare('big', null, { size: 200 << 20 });
      await s.remove('big');
      assert.throws(() => openSnapshotter('btrfs', loop.dir, db, { options: ['btrfs.min_space=lots'] }), /invalid size: 'lots'/);
    } finally {
      db.close();
      loop.release();
    }
  });
});

describe('walking differ', () => {
  it('sees an xattr, a symlink retargeted at the same length and a new hard link; not an untouched tree', T, async () => {
    const lower = path.join(tmp, 'lower');
    fs.mkdirSync(path.join(lower, 'd'), { recursive: true });
    fs.writeFileSync(path.join(lower, 'd', 'f'), 'f');
    fs.writeFileSync(path.join(lower, 'x'), 'x');
    fs.symlinkSync('aaa', path.join(lower, 'ln'));
    fs.utimesSync(path.join(lower, 'x'), 1_600_000_000, 1_600_000_000);
    const upper = path.join(tmp, 'upper');
    execFileSync('cp', ['-a', lower, upper]); // as vfs copies: nanosecond times kept
    assert.deepEqual(await changes(lower, upper), []);
    sys.setxattr(path.join(upper, 'x'), 'user.tag', Buffer.from('1'));
    fs.rmSync(path.join(upper, 'ln'));
    fs.symlinkSync('bbb', path.join(upper, 'ln'));
    fs.linkSync(path.join(upper, 'd', 'f'), path.join(upper, 'd', 'g'));
    assert.deepEqual(await changes(lower, upper), ['W d', 'W d/g', 'W ln', 'W x']);
  });

  it('with a baseline, entries older than the snapshot are not compared, newer ones are', T, async () => {
    const lower = path.join(tmp, 'l2');
    const upper = path.join(tmp, 'u2');
    fs.mkdirSync(lower);
    fs.writeFileSync(path.join(lower, 'old'), 'o');
    fs.writeFileSync(path.join(lower, 'new'), 'n');
    execFileSync('cp', ['-a', lower, upper]);
    // A content change the baseline would hide if it were taken after it: the baseline says "older than now is untouched".
    fs.writeFileSync(path.join(upper, 'old'), 'O');
    const probe = path.join(tmp, 'probe');
    fs.writeFileSync(probe, '');
    const since = fs.lstatSync(probe, { bigint: true }).ctimeNs + 1n;
    assert.deepEqual(await changes(lower, upper, since), [], 'a change before the baseline is taken as the parent\'s');
    await new Promise((r) => setTimeout(r, 20));
    fs.writeFileSync(path.join(upper, 'new'), 'N');
    assert.deepEqual(await changes(lower, upper, since), ['W new']);
    assert.deepEqual(await changes(lower, upper), ['W new', 'W old'], 'without one, both are compared');
  });
});
