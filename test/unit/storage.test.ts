import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { Conflict, InvalidParameter, NotFound } from '../../src/errors.js';
import { createHash } from 'node:crypto';
import {
  applyLayer, backingFs, graphDriverData, mountAll, openOverlay2, prepareOnBase, removeOnBase, unmountAll, upperDirOf, type Snapshotter,
} from '../../src/storage/index.js';
import * as sys from '../../src/sys/index.js';
import { makeTar as buildTar, type Entry } from '../tar-fixtures.js';

const makeTar = (entries: Entry[]) => buildTar(entries, { mode: 0o644 });

const tarOf = async (entries: Entry[]): Promise<Readable> => Readable.from(await makeTar(entries));

let tmp: string;
let db: Database.Database;
let snap: Snapshotter;
const mounted: string[] = [];

function target(name: string): string {
  const t = path.join(tmp, 'mnt', name);
  fs.mkdirSync(t, { recursive: true });
  mounted.push(t);
  return t;
}

/** Everything under dir, as "relpath" (dirs with a trailing slash). */
function tree(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)) + (e.isDirectory() ? '/' : ''))
    .sort();
}

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-storage-'));
  db = new Database(path.join(tmp, 'meta.db'));
  snap = openOverlay2(path.join(tmp, 'overlay2'), db);
});

after(() => {
  for (const m of mounted) {
    try {
      unmountAll(m);
    } catch (err) {
      console.error('unmount', m, err);
    }
  }
  db.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('overlay2', () => {
  it('reports the backing filesystem and d_type support', () => {
    const b = backingFs(path.join(tmp, 'overlay2'));
    assert.equal(typeof b.name, 'string');
    assert.notEqual(b.name, 'overlayfs');
    assert.equal(b.dType, true);
  });

  it('stacks two layers with whiteouts and opaque dirs; writes go to the rw layer only', async () => {
    const tar0 = await makeTar([
        { name: 'a', body: 'A' },
        { name: 'b', body: 'B' },
        { name: 'etc/x', body: 'X' },
        { name: 'etc/keep', body: 'K' },
        { name: 'd/old', body: 'old' },
    ]);
    const diffIdOf = (b: Buffer): string => 'sha256:' + createHash('sha256').update(b).digest('hex');
    const l0 = await applyLayer(snap, null, Readable.from(tar0));
    assert.equal(l0.name, diffIdOf(tar0));
    assert.equal(l0.parent, null);
    const tar1 = await makeTar([{ name: 'etc/.wh.x' }, { name: 'd/', type: 'directory', mode: 0o755 }, { name: 'd/.wh..wh..opq' }, { name: 'd/new', body: 'new' }]);
    const l1 = await applyLayer(snap, l0.name, Readable.from(tar1));
    assert.notEqual(l1.name, diffIdOf(tar1));
    assert.deepEqual(snap.stat(l1.name), l1);

    const mounts = await snap.prepare('c1', l1.name);
    const m = target('c1');
    mountAll(mounts, m);
    assert.equal(sys.fsType(m), 0x794c7630);
    assert.deepEqual(tree(m), ['a', 'b', 'd/', 'd/new', 'etc/', 'etc/keep']);
    assert.equal(fs.readFileSync(path.join(m, 'a'), 'utf8'), 'A');

    const lowerBefore = tree(path.join(tmp, 'overlay2'));
    fs.writeFileSync(path.join(m, 'written'), 'w');
    fs.writeFileSync(path.join(m, 'a'), 'changed');
    fs.rmSync(path.join(m, 'b'));
    const upper = upperDirOf(snap.mounts('c1'))!;
    assert.equal(fs.readFileSync(path.join(upper, 'written'), 'utf8'), 'w');
    assert.equal(fs.readFileSync(path.join(upper, 'a'), 'utf8'), 'changed');
    assert.ok(fs.lstatSync(path.join(upper, 'b')).isCharacterDevice());
    // Only the snapshot's own dirs changed; layer diff dirs hold what they held.
    const cacheOfUpper = path.relative(path.join(tmp, 'overlay2'), upper).split('/')[0];
    const changed = tree(path.join(tmp, 'overlay2'))
      .filter((p) => !lowerBefore.includes(p))
      .filter((p) => !p.startsWith(cacheOfUpper + '/'));
    assert.deepEqual(changed, []);
    const linkDir = path.join(tmp, 'overlay2', 'l');
    const layerDiffs = fs.readdirSync(linkDir).map((l) => path.resolve(linkDir, fs.readlinkSync(path.join(linkDir, l))));
    const l0diff = layerDiffs.find((d) => fs.existsSync(path.join(d, 'b')) && fs.lstatSync(path.join(d, 'b')).isFile());
    assert.ok(l0diff);
    assert.equal(fs.readFileSync(path.join(l0diff, 'a'), 'utf8'), 'A');
    assert.equal(layerDiffs.filter((d) => fs.existsSync(path.join(d, 'written'))).length, 1); // the rw layer's own
    assert.ok((await snap.usage('c1')).size >= 'changed'.length + 1);

    // After a "daemon restart": same db, new snapshotter, same mounts.
    unmountAll(m);
    const again = openOverlay2(path.join(tmp, 'overlay2'), db);
    mountAll(again.mounts('c1'), m);
    assert.equal(fs.readFileSync(path.join(m, 'written'), 'utf8'), 'w');
    unmountAll(m);
    unmountAll(m); // not mounted: tolerated

    await assert.rejects(snap.remove(l0.name), Conflict);
    await assert.rejects(snap.remove(l1.name), Conflict);
    await snap.remove('c1');
    await assert.rejects(snap.remove('c1'), NotFound);
    assert.throws(() => snap.mounts('c1'), NotFound);
    await snap.remove(l1.name);
    await snap.remove(l0.name);
    assert.equal(snap.stat(l0.name), null);
    assert.deepEqual(fs.readdirSync(path.join(tmp, 'overlay2', 'l')), []);
  });

  it('dedupes identical layers by chain id', async () => {
    const entries = [{ name: 'same', body: 'same' }];
    const one = await applyLayer(snap, null, await tarOf(entries));
    const dirs = fs.readdirSync(path.join(tmp, 'overlay2')).length;
    const two = await applyLayer(snap, null, await tarOf(entries));
    assert.deepEqual(two, one);
    assert.equal(fs.readdirSync(path.join(tmp, 'overlay2')).length, dirs);
    await snap.remove(one.name);
  });

  it('mounts an empty chain and an init layer between image and rw layer', async () => {
    const m = target('empty');
    mountAll(await snap.prepare('empty', null), m);
    assert.deepEqual(fs.readdirSync(m), []);
    fs.writeFileSync(path.join(m, 'f'), 'x');
    unmountAll(m);
    await snap.remove('empty');

    const base = await applyLayer(snap, null, await tarOf([{ name: 'etc/hostname', body: 'image' }]));
    const mi = target('init');
    mountAll(
      await prepareOnBase(snap, 'withinit', base.name, async (dir) => {
        fs.mkdirSync(path.join(dir, 'etc'));
        fs.writeFileSync(path.join(dir, 'etc/hostname'), 'container');
      }),
      mi,
    );
    assert.equal(fs.readFileSync(path.join(mi, 'etc/hostname'), 'utf8'), 'container');
    assert.deepEqual(fs.readdirSync(upperDirOf(snap.mounts('withinit'))!), []);
    unmountAll(mi);
    await assert.rejects(snap.prepare('withinit', base.name), Conflict);
    const count = fs.readdirSync(path.join(tmp, 'overlay2')).length;
    await removeOnBase(snap, 'withinit');
    assert.equal(fs.readdirSync(path.join(tmp, 'overlay2')).length, count - 2);
    await snap.remove(base.name);
  });

  it('mounts 130 layers in one overlay', async () => {
    let parent: string | null = null as string | null;
    const chain: string[] = [];
    for (let i = 0; i < 130; i++) {
      const layer = await applyLayer(snap, parent, await tarOf([{ name: `f${i}`, body: String(i) }, { name: 'top', body: String(i) }]));
      parent = layer.name;
      chain.push(parent);
    }
    const m = target('deep');
    mountAll(await snap.prepare('deep', parent), m);
    assert.equal(fs.readdirSync(m).length, 131);
    assert.equal(fs.readFileSync(path.join(m, 'top'), 'utf8'), '129');
    assert.equal(fs.readFileSync(path.join(m, 'f0'), 'utf8'), '0');
    unmountAll(m);
    await snap.remove('deep');
    // Past one page of mount options, prepare fails clearly and leaves nothing behind.
    for (let i = 130; i < 142; i++) {
      parent = (await applyLayer(snap, parent, await tarOf([{ name: `f${i}`, body: String(i) }]))).name;
      chain.push(parent);
    }
    const dirs = fs.readdirSync(path.join(tmp, 'overlay2')).length;
    await assert.rejects(snap.prepare('toodeep', parent), (err: Error) => err instanceof InvalidParameter && /too many layers \(142\)/.test(err.message));
    assert.equal(fs.readdirSync(path.join(tmp, 'overlay2')).length, dirs);
    for (const c of chain.reverse()) await snap.remove(c);
  });

  it('stages layers out of order, commits them in order, and throws a discarded one away', async () => {
    const root = path.join(tmp, 'overlay2');
    const before = fs.readdirSync(root).sort();
    const [upper, base, spare] = await Promise.all([
      snap.stageLayer!(await tarOf([{ name: 'etc/.wh.motd' }, { name: 'top', body: 'T' }])),
      snap.stageLayer!(await tarOf([{ name: 'etc/motd', body: 'hi' }, { name: 'bottom', body: 'B' }])),
      snap.stageLayer!(await tarOf([{ name: 'unused', body: 'U' }])),
    ]);
    // Staged dirs are only .tmp- names: nothing a reader or getLayer() could pick up.
    assert.ok(fs.readdirSync(root).filter((n) => !before.includes(n)).every((n) => n.startsWith('.tmp-')));
    const l0 = base.commit(null);
    const l1 = upper.commit(l0.name);
    assert.equal(l1.parent, l0.name);
    assert.throws(() => upper.commit(null), /already committed/);
    spare.discard();
    assert.deepEqual(fs.readdirSync(root).filter((n) => n.startsWith('.tmp-')), []);

    const m = target('staged');
    mountAll(await snap.prepare('staged', l1.name), m);
    assert.deepEqual(tree(m), ['bottom', 'etc/', 'top']);
    unmountAll(m);
    mounted.splice(mounted.indexOf(m), 1);
    await snap.remove('staged');
    await snap.remove(l1.name);
    await snap.remove(l0.name);
    assert.deepEqual(fs.readdirSync(root).sort(), before);
  });

  it("describes an overlay's dirs for inspect's GraphDriver.Data, as absolute paths", { timeout: 60_000 }, async () => {
    const base = await applyLayer(snap, null, await tarOf([{ name: 'g', body: 'g' }]));
    const mounts = await snap.prepare('gd', base.name);
    const data = graphDriverData(mounts);
    assert.equal(data.UpperDir, upperDirOf(mounts));
    assert.ok(path.isAbsolute(data.WorkDir!) && fs.statSync(data.WorkDir!).isDirectory());
    const lowers = data.LowerDir!.split(':');
    assert.equal(lowers.length, 1);
    assert.equal(fs.readFileSync(path.join(lowers[0]!, 'g'), 'utf8'), 'g');
    assert.deepEqual(graphDriverData([{ type: 'bind', source: '/x', options: ['rbind'] }]), {});
    await snap.remove('gd');
    await snap.remove(base.name);
  });

  it('opens a data root made before views existed: its snapshots are active and still mount', { timeout: 60_000 }, async () => {
    const old = fs.mkdtempSync(path.join(tmp, 'old-'));
    const odb = new Database(path.join(old, 'meta.db'));
    try {
      const first = openOverlay2(path.join(old, 'overlay2'), odb);
      const base = await applyLayer(first, null, await tarOf([{ name: 'f', body: 'from the image' }]));
      await first.prepare('c-old', base.name);
      // The table as it was: no kind column.
      odb.exec('CREATE TABLE s2 (key TEXT PRIMARY KEY, parent TEXT REFERENCES storage_layers(chain_id), cache_id TEXT NOT NULL UNIQUE, init_cache_id TEXT);'
        + 'INSERT INTO s2 SELECT key, parent, cache_id, init_cache_id FROM storage_snapshots; DROP TABLE storage_snapshots; ALTER TABLE s2 RENAME TO storage_snapshots;');
      const reopened = openOverlay2(path.join(old, 'overlay2'), odb);
      assert.equal(reopened.stat('c-old')?.kind, 'active');
      const m = target('old');
      mountAll(reopened.mounts('c-old'), m);
      assert.equal(fs.readFileSync(path.join(m, 'f'), 'utf8'), 'from the image');
      unmountAll(m);
      await reopened.remove('c-old');
      await reopened.remove(base.name);
    } finally {
      odb.close();
    }
  });

  it('recover() removes half-written layers and orphan links, keeps committed ones', async () => {
    const kept = await applyLayer(snap, null, await tarOf([{ name: 'k', body: 'k' }]));
    const root = path.join(tmp, 'overlay2');
    // A crash mid-unpack leaves a staging dir; a crash after rename but before the row leaves a dir + link.
    fs.mkdirSync(path.join(root, '.tmp-deadbeef', 'diff'), { recursive: true });
    fs.writeFileSync(path.join(root, '.tmp-deadbeef', 'diff', 'half'), 'x');
    fs.mkdirSync(path.join(root, 'cafe', 'diff'), { recursive: true });
    fs.symlinkSync('../cafe/diff', path.join(root, 'l', 'ORPHANLINKORPHANLINKORPHAN'));
    await snap.recover();
    assert.equal(fs.existsSync(path.join(root, '.tmp-deadbeef')), false);
    assert.equal(fs.existsSync(path.join(root, 'cafe')), false);
    assert.equal(fs.existsSync(path.join(root, 'l', 'ORPHANLINKORPHANLINKORPHAN')), false);
    assert.deepEqual(snap.stat(kept.name), kept);
    assert.equal(fs.readdirSync(path.join(root, 'l')).length, 1);
    await snap.remove(kept.name);
  });
});
