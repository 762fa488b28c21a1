/**
 * What every snapshotter driver must do, through the driver-neutral interface only: each driver in
 * storage/registry.ts runs the same cases. Layers go in the generic way (prepare → applyToMounts →
 * commit) and, where the driver has it, through stageLayer too (applyLayer picks it).
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { applyToMounts } from '../../src/archive/index.js';
import { Conflict, NotFound } from '../../src/errors.js';
import {
  applyLayer, chainIdOf, DRIVERS, openSnapshotter, removeExtracts, snapshotDiff, unpackLayer, withMounts, type LayerTarget, type Snapshotter,
} from '../../src/storage/index.js';
import tarStream from 'tar-stream';
import { makeTar as buildTar, type Entry } from '../tar-fixtures.js';
import { killMidway } from '../kill9.js';
import { makeLoopFs, type LoopFs } from '../loopfs.js';
import * as sys from '../../src/sys/index.js';

const makeTar = (entries: Entry[]) => buildTar(entries, { mode: 0o644 });


/** Everything under dir, as "relpath" (dirs with a trailing slash). */
function tree(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)) + (e.isDirectory() ? '/' : ''))
    .sort();
}

/** Names (dirs with a trailing slash, as the tar has them) of a tar's entries. */
async function tarNames(tar: Readable): Promise<string[]> {
  const names: string[] = [];
  const x = tarStream.extract();
  x.on('entry', (h, body, next) => {
    names.push(h.name);
    body.on('end', () => next());
    body.resume();
  });
  const done = new Promise<void>((resolve, reject) => { x.on('finish', resolve); x.on('error', reject); });
  tar.pipe(x as unknown as NodeJS.WritableStream);
  await done;
  return names;
}

/** Every path under dir with what it is: a file's content, a symlink's target, "dir". */
function contents(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const rel of tree(dir)) {
    const p = path.join(dir, rel);
    const st = fs.lstatSync(p);
    out[rel] = st.isDirectory() ? `dir ${(st.mode & 0o7777).toString(8)}` : st.isSymbolicLink() ? `-> ${fs.readlinkSync(p)}` : `${(st.mode & 0o7777).toString(8)} ${fs.readFileSync(p, 'utf8')}`;
  }
  return out;
}

/** Private mount dirs (/tmp/berth-mount-*) whose source tree lies inside dir: bind mounts of a snapshot's tree. */
function mountsFrom(dir: string): string[] {
  const rows = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).map((l) => l.split(' '));
  const unescape = (p: string): string => p.replace(/\\040/g, ' ');
  // The mount holding dir, and dir's path inside that filesystem (what mountinfo's root field shows).
  const holder = rows.map((r) => unescape(r[4]!)).filter((m) => dir === m || dir.startsWith(m.endsWith('/') ? m : `${m}/`)).sort((a, b) => b.length - a.length)[0]!;
  const inside = holder === '/' ? dir : dir.slice(holder.length);
  return rows
    .filter((r) => {
      const root = unescape(r[3]!).replace(/\/\/deleted$/, '');
      return (root === inside || root.startsWith(`${inside}/`)) && unescape(r[4]!).startsWith(path.join(os.tmpdir(), 'berth-mount-'));
    })
    .map((r) => unescape(r[4]!));
}

/** What a failed test may leave: unmounted so the next run starts clean. */
function unmountFrom(dir: string): void {
  for (const at of mountsFrom(dir)) {
    try {
      sys.umount(at, sys.MNT_DETACH);
      fs.rmdirSync(at);
    } catch (err) {
      console.error('unmount', at, err);
    }
  }
}

const drivers = Object.keys(DRIVERS);
const T = { timeout: 60_000 };
let n = 0;

for (const driver of drivers) {
  describe(`snapshotter conformance: ${driver}`, () => {
    let tmp: string;
    let db: Database.Database;
    let s: Snapshotter;
    let loop: LoopFs | undefined;

    before(() => {
      // btrfs needs its data root on a btrfs filesystem: one in a loop file (btrfs-progs makes it), removed in after().
      if (driver === 'btrfs') loop = makeLoopFs('btrfs', 512);
      tmp = fs.mkdtempSync(path.join(loop?.dir ?? os.tmpdir(), `berth-conf-${driver}-`));
      db = new Database(path.join(tmp, 'meta.db'));
      s = openSnapshotter(driver, tmp, db);
    });
    after(() => {
      try {
        db?.close();
        if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
      } finally {
        loop?.release();
      }
    });

    /** The generic way: prepare on parent, apply the tar onto its mounts, commit by chain ID. */
    async function layer(parent: string | null, entries: Entry[]): Promise<string> {
      const key = `apply-${n++}`;
      const result = await applyToMounts(Readable.from(await makeTar(entries)), await s.prepare(key, parent));
      const name = chainIdOf(parent, result.diffId);
      await s.commit(name, key);
      return name;
    }

    /** The files of committed `name`, through a view. */
    async function look<T>(name: string | null, fn: (dir: string) => T): Promise<T> {
      const key = `look-${n++}`;
      try {
        return await withMounts(await s.view(key, name), async (dir) => fn(dir));
      } finally {
        await s.remove(key);
      }
    }

    /** The driver without its optional stageLayer: what unpackLayer does on drivers that lack it. */
    const generic = (): LayerTarget => ({ prepare: (k, p) => s.prepare(k, p), commit: (nm, k) => s.commit(nm, k), remove: (k) => s.remove(k), stat: (k) => s.stat(k) });

    for (const how of ['prepare → apply → commit', 'applyLayer', 'unpackLayer without stageLayer'] as const) {
      const add = async (parent: string | null, entries: Entry[]): Promise<string> => {
        if (how === 'prepare → apply → commit') return layer(parent, entries);
        const tar = Readable.from(await makeTar(entries));
        if (how === 'applyLayer') return (await applyLayer(s, parent, tar)).name;
        const u = await unpackLayer(generic(), tar, Promise.resolve(parent));
        return (await u.commit(parent)).name;
      };

      it(`${how}: a file deleted from a lower layer stays deleted; an opaque dir hides what was below`, T, async () => {
        const l0 = await add(null, [
          { name: 'a', body: 'A' }, { name: 'etc/x', body: 'X' }, { name: 'etc/keep', body: 'K' },
          { name: 'd/', type: 'directory', mode: 0o755 }, { name: 'd/old', body: 'old' },
        ]);
        const l1 = await add(l0, [
          { name: 'etc/.wh.x' }, { name: 'd/', type: 'directory', mode: 0o755 }, { name: 'd/.wh..wh..opq' }, { name: 'd/new', body: 'new' },
        ]);
        const l2 = await add(l1, [{ name: 'b', body: 'B' }]);
        assert.deepEqual(await look(l0, tree), ['a', 'd/', 'd/old', 'etc/', 'etc/keep', 'etc/x']);
        assert.deepEqual(await look(l2, tree), ['a', 'b', 'd/', 'd/new', 'etc/', 'etc/keep']);
        for (const l of [l2, l1, l0]) await s.remove(l);
      });

      it(`${how}: a dir replaced by a file, and back`, T, async () => {
        const l0 = await add(null, [{ name: 'x/', type: 'directory', mode: 0o755 }, { name: 'x/f', body: 'f' }]);
        const l1 = await add(l0, [{ name: '.wh.x' }, { name: 'x', body: 'file now' }]);
        const l2 = await add(l1, [{ name: '.wh.x' }, { name: 'x/', type: 'directory', mode: 0o755 }, { name: 'x/g', body: 'g' }]);
        assert.deepEqual(await look(l0, tree), ['x/', 'x/f']);
        assert.equal(await look(l1, (d) => fs.readFileSync(path.join(d, 'x'), 'utf8')), 'file now');
        assert.deepEqual(await look(l2, tree), ['x/', 'x/g']);
        for (const l of [l2, l1, l0]) await s.remove(l);
      });
    }

    it('snapshotDiff: the changes of an active snapshot as a layer tar; applied on the parent it gives the same tree', T, async () => {
      const l0 = await layer(null, [
        { name: 'a', body: 'A' }, { name: 'etc/x', body: 'X' }, { name: 'etc/keep', body: 'K' },
        { name: 'd/', type: 'directory', mode: 0o755 }, { name: 'd/old', body: 'old' },
        { name: 'x/', type: 'directory', mode: 0o755 }, { name: 'x/f', body: 'f' }, { name: 'y', body: 'y file' },
        { name: 'same/', type: 'directory', mode: 0o755 }, { name: 'same/s', body: 'S' }, { name: 'sneaky', body: 'Z' },
      ]);
      const mounts = await s.prepare('cd1', l0);
      const want = await withMounts(mounts, async (dir) => {
        fs.rmSync(path.join(dir, 'etc/x')); // a lower file deleted
        fs.rmSync(path.join(dir, 'x'), { recursive: true }); // a dir becomes a file
        fs.writeFileSync(path.join(dir, 'x'), 'x is a file');
        fs.rmSync(path.join(dir, 'y')); // a file becomes a dir
        fs.mkdirSync(path.join(dir, 'y'));
        fs.writeFileSync(path.join(dir, 'y/z'), 'z');
        fs.rmSync(path.join(dir, 'd'), { recursive: true }); // an opaque dir: same name, none of the old contents
        fs.mkdirSync(path.join(dir, 'd'));
        fs.writeFileSync(path.join(dir, 'd/new'), 'new');
        fs.writeFileSync(path.join(dir, 'a'), 'A changed');
        fs.symlinkSync('a', path.join(dir, 'link'));
        // Same size, and the mtime put back: only the content (or the ctime) tells.
        const st = fs.statSync(path.join(dir, 'sneaky'));
        fs.writeFileSync(path.join(dir, 'sneaky'), 'Q');
        fs.utimesSync(path.join(dir, 'sneaky'), st.atime, st.mtime);
        return contents(dir);
      });
      const names = await tarNames(snapshotDiff(s, 'cd1'));
      for (const n of ['etc/.wh.x', 'x', 'y/', 'y/z', 'd/', 'd/new', 'a', 'link', 'sneaky']) assert.ok(names.includes(n), `${n} is in the diff: ${names.join(' ')}`);
      for (const n of ['etc/keep', 'same/', 'same/s', 'd/old']) assert.ok(!names.includes(n), `${n} is not in the diff: ${names.join(' ')}`);
      const l1 = (await applyLayer(s, l0, snapshotDiff(s, 'cd1'))).name;
      assert.deepEqual(await look(l1, contents), want);
      assert.ok(!s.walk().some((i) => i.kind === 'view'), 'the differ removed its view');
      // Nothing changed: an empty layer.
      await s.prepare('cd2', l1);
      assert.deepEqual(await tarNames(snapshotDiff(s, 'cd2')), []);
      for (const k of ['cd2', 'cd1', l1, l0]) await s.remove(k);
    });

    it('prepare, write, commit; prepare on the committed one sees the write; a name is committed once', T, async () => {
      await withMounts(await s.prepare('w1', null), async (dir) => fs.writeFileSync(path.join(dir, 'made'), 'here'));
      const info = await s.commit('c1', 'w1');
      assert.equal(info.kind, 'committed');
      assert.equal(s.stat('w1'), null);
      assert.equal(s.stat('c1')?.kind, 'committed');
      await withMounts(await s.prepare('w2', 'c1'), async (dir) => {
        assert.equal(fs.readFileSync(path.join(dir, 'made'), 'utf8'), 'here');
        fs.writeFileSync(path.join(dir, 'made'), 'changed');
      });
      // The committed one is immutable: its own view still shows the first content.
      assert.equal(await look('c1', (d) => fs.readFileSync(path.join(d, 'made'), 'utf8')), 'here');
      // Again after a "restart": mounts(key) describes the same tree.
      const again = openSnapshotter(driver, tmp, db);
      assert.equal(await withMounts(again.mounts('w2'), async (d) => fs.readFileSync(path.join(d, 'made'), 'utf8')), 'changed');
      await s.prepare('w3', null);
      await assert.rejects(s.commit('c1', 'w3'), Conflict);
      await assert.rejects(s.prepare('w2', null), Conflict);
      for (const k of ['w3', 'w2', 'c1']) await s.remove(k);
    });

    it('a view is read-only: writes fail with EROFS', T, async () => {
      const l0 = await layer(null, [{ name: 'f', body: 'f' }]);
      await withMounts(await s.view('v1', l0), async (dir) => {
        assert.equal(fs.readFileSync(path.join(dir, 'f'), 'utf8'), 'f');
        assert.throws(() => fs.writeFileSync(path.join(dir, 'new'), 'x'), { code: 'EROFS' });
        assert.throws(() => fs.rmSync(path.join(dir, 'f')), { code: 'EROFS' });
      });
      assert.equal(s.stat('v1')?.kind, 'view');
      await assert.rejects(s.commit('fromview', 'v1'));
      await s.remove('v1');
      await withMounts(await s.view('v2', null), async (dir) => assert.deepEqual(fs.readdirSync(dir), []));
      await s.remove('v2');
      await s.remove(l0);
    });

    it('usage counts the bytes and inodes of a snapshot\'s own layer', T, async () => {
      const l0 = await layer(null, [{ name: 'big', body: 'x'.repeat(10_000) }]);
      await withMounts(await s.prepare('u1', l0), async (dir) => {
        fs.writeFileSync(path.join(dir, 'mine'), 'y'.repeat(5000));
        fs.mkdirSync(path.join(dir, 'sub'));
        fs.writeFileSync(path.join(dir, 'sub/two'), 'z'.repeat(3000));
        fs.linkSync(path.join(dir, 'sub/two'), path.join(dir, 'sub/again'));
      });
      const u = await s.usage('u1');
      assert.ok(u.size >= 8000 && u.size < 10_000, `size ${u.size}: own files, a hard link once, not the parent's`);
      assert.ok(u.inodes >= 3, `inodes ${u.inodes}`);
      assert.ok((await s.usage(l0)).size >= 10_000);
      await s.remove('u1');
      await s.remove(l0);
    });

    it('remove: Conflict while a child uses a committed one; NotFound for what does not exist; walk lists all', T, async () => {
      const l0 = await layer(null, [{ name: 'a', body: 'a' }]);
      const l1 = await layer(l0, [{ name: 'b', body: 'b' }]);
      await s.prepare('child', l1);
      await s.view('viewer', l0);
      await assert.rejects(s.remove(l0), Conflict);
      await assert.rejects(s.remove(l1), Conflict);
      await assert.rejects(s.remove('no-such-snapshot'), NotFound);
      const all = new Map(s.walk().map((i) => [i.name, i]));
      assert.equal(all.get(l0)?.kind, 'committed');
      assert.equal(all.get(l1)?.parent, l0);
      assert.equal(all.get('child')?.kind, 'active');
      assert.equal(all.get('child')?.parent, l1);
      assert.equal(all.get('viewer')?.kind, 'view');
      await s.remove('child');
      await s.remove(l1);
      await assert.rejects(s.remove(l0), Conflict);
      await s.remove('viewer');
      await s.remove(l0);
      assert.deepEqual(s.walk(), []);
    });

    it('kill -9 in the middle of prepare/apply/commit/remove leaves a consistent store', { timeout: 120_000 }, async (t) => {
      const root = path.resolve(fileURLToPath(import.meta.url), '../../..');
      const dir = fs.mkdtempSync(path.join(tmp, 'crash-'));
      const child = path.join(dir, 'child.mts');
      fs.writeFileSync(child, `
        import path from 'node:path';
        import { Readable } from 'node:stream';
        import Database from ${JSON.stringify(createRequire(import.meta.url).resolve('better-sqlite3'))};
        import tar from ${JSON.stringify(createRequire(import.meta.url).resolve('tar-stream'))};
        import { applyToMounts } from ${JSON.stringify(path.join(root, 'src/archive/index.ts'))};
        import { applyLayer, chainIdOf, openSnapshotter, unpackLayer } from ${JSON.stringify(path.join(root, 'src/storage/index.ts'))};
        const dir = ${JSON.stringify(dir)};
        const db = new Database(path.join(dir, 'meta.db'));
        const s = openSnapshotter(${JSON.stringify(driver)}, dir, db);
        async function makeTar(i) {
          const p = tar.pack();
          const chunks = [];
          const done = (async () => { for await (const c of p) chunks.push(Buffer.from(c)); })();
          for (let f = 0; f < 200; f++) p.entry({ name: 'd' + (f % 10) + '/f' + i + '-' + f, mode: 0o644 }, 'x'.repeat(2000));
          p.finalize();
          await done;
          return Buffer.concat(chunks);
        }
        let parent = null;
        const made = [];
        for (let i = 0; ; i++) {
          const key = 'k' + i;
          let name;
          if (i % 3 === 1) {
            const r = await applyToMounts(Readable.from(await makeTar(i)), await s.prepare(key, parent));
            name = chainIdOf(parent, r.diffId);
            await s.commit(name, key);
          } else if (i % 3 === 2) {
            // The generic ingest path, as on a driver without stageLayer.
            const generic = { prepare: (k, p) => s.prepare(k, p), commit: (n, k) => s.commit(n, k), remove: (k) => s.remove(k), stat: (k) => s.stat(k) };
            const u = await unpackLayer(generic, Readable.from(await makeTar(i)), Promise.resolve(parent));
            name = (await u.commit(parent)).name;
          } else {
            name = (await applyLayer(s, parent, Readable.from(await makeTar(i)))).name;
          }
          made.push(name);
          parent = name;
          if (made.length > 4) { parent = null; for (const l of made.reverse()) await s.remove(l); made.length = 0; }
          if (i === 0) process.stdout.write('ready\\n');
        }
      `);
      await killMidway(t, child, root, { min: 800, spread: 1200 });

      // A killed process leaves its private mount dirs mounted (the kernel keeps them). Copy drivers mount their
      // trees to apply a layer: their recover() takes those down; overlays are applied without a mount.
      t.after(() => unmountFrom(dir));
      const cdb = new Database(path.join(dir, 'meta.db'));
      try {
        const c = openSnapshotter(driver, dir, cdb);
        await c.recover();
        assert.deepEqual(mountsFrom(dir), [], 'no mount of the killed process is left');
        await removeExtracts(c);
        const all = c.walk();
        assert.ok(!all.some((i) => i.name.startsWith('extract-')), 'no half-unpacked layer is left');
        // The child said 'ready' after its first layer, so it did work; the store may still be empty now,
        // since every fifth layer it removes the whole chain.
        for (const info of all) {
          if (info.kind === 'committed') {
            // Every committed layer reads back whole: 200 files of each layer in its chain.
            const count = await withMounts(await c.view(`check-${n++}`, info.name), async (d) => tree(d).filter((p) => !p.endsWith('/')).length);
            let depth = 0;
            for (let p: string | null = info.name; p; p = c.stat(p)?.parent ?? null) depth++;
            assert.equal(count, depth * 200, `committed ${info.name} is complete`);
          } else {
            await withMounts(c.mounts(info.name), async (d) => fs.readdirSync(d));
          }
        }
        // And the store takes new work.
        const fresh = await applyLayer(c, null, Readable.from(await makeTar([{ name: 'after', body: 'crash' }])));
        assert.equal(await withMounts(await c.view('after-view', fresh.name), async (d) => fs.readFileSync(path.join(d, 'after'), 'utf8')), 'crash');
      } finally {
        cdb.close();
      }
    });
  });
}
