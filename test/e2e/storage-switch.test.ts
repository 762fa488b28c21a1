/**
 * Switching storage drivers, as Docker does it: each driver has its own images (records per driver,
 * content blobs shared) and lists only the containers it holds; switching back finds them intact, a
 * running container included. A data root from before per-driver records still opens with its
 * images and containers, under the driver that holds their layers.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { startDaemon, loadTestImages, printLogTail, type Daemon } from '../harness.js';
import { pushBusybox, startDistribution, type Distribution, type PushedImage } from '../registry-fixtures.js';

const T = { timeout: 240_000 };

let reg: Distribution;
let pushed: PushedImage;
/** localhost:PORT: docker's loopback rule makes it a plain-http registry. */
let ref = '';

before(async () => {
  reg = await startDistribution();
  pushed = await pushBusybox(reg.host, 'switch/busybox:1');
  ref = `localhost:${reg.host.split(':')[1]}/switch/busybox:1`;
});
after(async () => {
  await reg?.stop();
});

async function ok(d: Daemon, args: string[]): Promise<string> {
  const r = await d.docker(args, { timeoutMs: 120_000 });
  if (r.code !== 0) printLogTail(d, `docker ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const imagesOf = async (d: Daemon): Promise<string> =>
  (await ok(d, ['images', '--no-trunc', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}'])).split('\n').filter(Boolean).sort().join('\n');
const containersOf = async (d: Daemon): Promise<string> =>
  (await ok(d, ['ps', '-a', '--no-trunc', '--format', '{{.ID}} {{.Names}} {{.Image}} {{.State}}'])).split('\n').filter(Boolean).sort().join('\n');

describe('switching storage drivers', () => {
  it('vfs sees none of overlay2\'s images and containers; back on overlay2 both are intact and the container runs', T, async () => {
    const d = await startDaemon({ extraArgs: ['--storage-driver', 'overlay2'] });
    try {
      await loadTestImages(d);
      await ok(d, ['pull', '-q', ref]);
      const script = 'test -f /kept && cat /kept || echo first > /kept';
      const keep = (await ok(d, ['create', '--name', 'keep', 'busybox', 'sh', '-c', script])).trim();
      assert.equal(await ok(d, ['start', '-a', keep]), '');
      const up = (await ok(d, ['run', '-d', '--name', 'up', '-v', 'upvol:/data', ref, 'sh', '-c', 'echo alive > /tmp/mark; echo kept > /data/v; sleep 600'])).trim();
      const ipOf = async (): Promise<string> => (await ok(d, ['inspect', '--format', '{{.NetworkSettings.IPAddress}}', up])).trim();
      const ip = await ipOf();
      assert.match(ip, /^\d+\.\d+\.\d+\.\d+$/);
      const images = await imagesOf(d);
      const containers = await containersOf(d);
      assert.match(images, /busybox:latest[\s\S]*hello-world:latest[\s\S]*switch\/busybox:1/);
      assert.match(containers, new RegExp(`${up} up \\S+ running`));

      await d.restart({ graceful: true, extraArgs: ['--storage-driver', 'vfs'] });
      assert.equal((await ok(d, ['info', '--format', '{{.Driver}} {{.Images}} {{.Containers}}'])).trim(), 'vfs 0 0');
      assert.equal(await ok(d, ['images', '-q']), '');
      assert.equal(await ok(d, ['ps', '-aq']), '');
      const inspect = await d.docker(['inspect', 'keep']);
      assert.equal(inspect.code, 1);
      assert.match(inspect.stderr, /No such object: keep/);
      // The hidden container's volume is still in use.
      const vol = await d.docker(['volume', 'rm', 'upvol']);
      assert.notEqual(vol.code, 0);
      assert.match(vol.stderr, new RegExp(`volume is in use - \\[${up}\\]`));
      // The same image pulled and removed under vfs: the blobs overlay2's copy uses stay.
      await ok(d, ['pull', '-q', ref]);
      // The hidden container's name stays taken, and the refusal says by whom.
      const named = await d.docker(['run', '--name', 'keep', ref, 'true']);
      assert.match(named.stderr, new RegExp(`"/keep" is already in use by container "${keep}" of storage driver overlay2, hidden while berthd runs vfs`));
      assert.equal(named.code, 125);
      assert.equal(await ok(d, ['run', '--rm', ref, 'cat', '/etc/berth-hello']), 'hello from the registry\n');
      await ok(d, ['rmi', ref]);
      assert.equal(await ok(d, ['images', '-q']), '');
      const blob = (digest: string): string => path.join(d.dataRoot, 'content', 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
      for (const digest of [pushed.configDigest, pushed.manifestDigest, ...pushed.layers.map((l) => l.digest)]) {
        assert.ok(fs.existsSync(blob(digest)), `blob ${digest} of overlay2's image is still there`);
      }

      await d.restart({ graceful: true, extraArgs: ['--storage-driver', 'overlay2'] });
      assert.equal(await imagesOf(d), images);
      assert.equal(await containersOf(d), containers);
      assert.equal(await ok(d, ['exec', up, 'cat', '/tmp/mark', '/etc/berth-hello', '/data/v', '/sys/class/net/eth0/operstate']), 'alive\nhello from the registry\nkept\nup\n', 'the running container ran on, volume and network too');
      assert.equal(await ipOf(), ip);
      assert.equal(await ok(d, ['start', '-a', keep]), 'first\n');
      // The pulled image is whole: its layers and blobs are what save needs.
      const saved = path.join(d.dataRoot, 'tmp', 'saved.tar');
      await ok(d, ['save', '-o', saved, ref]);
      assert.ok(fs.statSync(saved).size > 100_000);
      fs.rmSync(saved);
      await ok(d, ['rm', '-f', '-v', up, keep]);
      await ok(d, ['volume', 'rm', 'upvol']);
      await ok(d, ['rmi', ref, 'busybox', 'hello-world']);
      assert.equal(await ok(d, ['images', '-q']), '');
    } finally {
      await d.stop();
    }
  });

  it('a data root from before per-driver records opens with its images and containers under the driver holding them', T, async () => {
    const d = await startDaemon({ extraArgs: ['--storage-driver', 'overlay2'] });
    try {
      await loadTestImages(d);
      await ok(d, ['pull', '-q', ref]);
      await ok(d, ['tag', 'busybox', 'old/name:2']);
      const id = (await ok(d, ['create', '--name', 'old', 'busybox', 'sh', '-c', 'test -f /kept && cat /kept || echo first > /kept'])).trim();
      assert.equal(await ok(d, ['start', '-a', id]), '');
      const images = await imagesOf(d);
      const containers = await containersOf(d);
      await d.kill9();
      // The layout before: one shared image_images/image_refs, container records without a driver.
      const db = new Database(path.join(d.dataRoot, 'berth.db'));
      db.exec(`
        DROP INDEX image_overlay2_refs_by_image;
        ALTER TABLE image_overlay2_images RENAME TO image_images;
        ALTER TABLE image_overlay2_refs RENAME TO image_refs;
        CREATE INDEX image_refs_by_image ON image_refs(image_id);
        UPDATE containers SET record = json_remove(record, '$.driver');
      `);
      db.close();
      // Opened first under vfs: the records go to overlay2, which holds the layers, so vfs shows none of them.
      await d.restart({ extraArgs: ['--storage-driver', 'vfs'] });
      assert.equal(await ok(d, ['images', '-q']), '');
      assert.equal(await ok(d, ['ps', '-aq']), '');
      await d.restart({ graceful: true, extraArgs: ['--storage-driver', 'overlay2'] });
      assert.equal(await imagesOf(d), images);
      assert.equal(await containersOf(d), containers);
      assert.equal(await ok(d, ['start', '-a', id]), 'first\n');
      assert.equal(await ok(d, ['run', '--rm', 'old/name:2', 'echo', 'tag kept']), 'tag kept\n');
      const tables = new Database(path.join(d.dataRoot, 'berth.db'), { readonly: true });
      try {
        const names = (tables.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'image%'").all() as { name: string }[]).map((r) => r.name).sort();
        assert.deepEqual(names, ['image_overlay2_images', 'image_overlay2_refs', 'image_vfs_images', 'image_vfs_refs'], 'the shared tables are gone');
      } finally {
        tables.close();
      }
      await ok(d, ['rm', id]);
    } finally {
      await d.stop();
    }
  });
});
