import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import { applyLayer, applyLayerOffThread, diffLayer, packDir, packWith, safeJoin } from '../../src/archive/index.js';
import { InvalidParameter } from '../../src/errors.js';
import * as sys from '../../src/sys/index.js';
import { makeTar, type Entry } from '../tar-fixtures.js';


async function listTar(stream: Readable): Promise<Map<string, tar.Header>> {
  const out = new Map<string, tar.Header>();
  const ex = tar.extract();
  ex.on('entry', (header, body, next) => {
    out.set(header.name, header);
    body.on('end', () => next());
    body.resume();
  });
  await pipeline(stream, ex as unknown as NodeJS.WritableStream);
  return out;
}

/** Every path under dir, without following symlinks, skipping `skip`. */
function listTree(dir: string, skip: string): string[] {
  const out: string[] = [];
  const visit = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, e.name);
      if (full === skip) continue;
      out.push(full);
      if (e.isDirectory()) visit(full);
    }
  };
  visit(dir);
  return out.sort();
}

let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-archive-'));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function fresh(name: string): string {
  const d = path.join(tmp, name);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

describe('safeJoin', () => {
  it('keeps .., absolute names and symlinks inside root', () => {
    const root = fresh('sj/root');
    fs.symlinkSync('/', path.join(root, 'up'));
    fs.symlinkSync('../../..', path.join(root, 'rel'));
    fs.mkdirSync(path.join(root, 'etc'));
    assert.equal(safeJoin(root, '../../etc/passwd'), path.join(root, 'etc/passwd'));
    assert.equal(safeJoin(root, '/etc/passwd'), path.join(root, 'etc/passwd'));
    assert.equal(safeJoin(root, 'up/etc/passwd'), path.join(root, 'etc/passwd'));
    assert.equal(safeJoin(root, 'rel/x'), path.join(root, 'x'));
    assert.equal(safeJoin(root, 'up'), root);
  });
});

describe('applyLayer', () => {
  it('refuses or contains a malicious tar: nothing is written outside dir', async () => {
    const box = fresh('evil');
    const root = fresh('evil/a/b/root');
    const outsideX = path.join(box, 'a', 'x');
    fs.writeFileSync(outsideX, 'secret');
    const before = listTree(box, root);
    // Each hostile tar is either contained (its paths resolved inside root, as dockerd does) or
    // refused with berth's error; none may fail in any other way.
    const cases: [Entry[], 'contained' | Record<string, unknown>][] = [
      [[{ name: '../evil', body: 'x' }], 'contained'],
      [[{ name: '/abs', body: 'x' }], 'contained'],
      [[{ name: 'link', type: 'symlink', linkname: '/' }, { name: 'link/etc/evil', body: 'x' }], 'contained'],
      [[{ name: 'up', type: 'symlink', linkname: '../../..' }, { name: 'up/evil2', body: 'x' }], 'contained'],
      // The link target resolves to root/x, which does not exist: link(2) fails.
      [[{ name: 'hl', type: 'link', linkname: '../../x' }], { code: 'ENOENT', syscall: 'link', dest: path.join(root, 'hl') }],
      [[{ name: 'ln', type: 'symlink', linkname: '../../x' }, { name: 'ln', body: 'overwrite' }], 'contained'],
    ];
    for (const [entries, outcome] of cases) {
      const applied = applyLayer(Readable.from(await makeTar(entries)), root);
      if (outcome === 'contained') await applied;
      else await assert.rejects(applied, outcome, entries[0].name);
    }
    assert.deepEqual(listTree(box, root), before);
    assert.equal(fs.readFileSync(outsideX, 'utf8'), 'secret');
    assert.equal(fs.statSync(outsideX).nlink, 1);
    assert.equal(fs.existsSync('/abs'), false);
    assert.equal(fs.existsSync('/etc/evil'), false);
    // contained copies landed inside root
    assert.equal(fs.readFileSync(path.join(root, 'evil'), 'utf8'), 'x');
    assert.equal(fs.readFileSync(path.join(root, 'etc/evil'), 'utf8'), 'x');
    assert.equal(fs.lstatSync(path.join(root, 'ln')).isFile(), true);
  });

  it('keeps hard links, symlinks, modes, owners, mtimes, devices, fifos and xattrs', async () => {
    const root = fresh('meta');
    const mtime = new Date(1_500_000_000_000);
    const buf = await makeTar([
      { name: 'bin/', type: 'directory', mode: 0o755 },
      { name: 'bin/su', mode: 0o4755, uid: 0, gid: 0, body: 'su', mtime },
      { name: 'bin/other', type: 'link', linkname: 'bin/su' },
      { name: 'tmp/', type: 'directory', mode: 0o1777, mtime },
      { name: 'home/u/f', mode: 0o640, uid: 1234, gid: 5678, body: 'data', pax: { 'SCHILY.xattr.user.note': 'hello' } },
      { name: 'sh', type: 'symlink', linkname: '/bin/su', uid: 1234, gid: 5678 },
      { name: 'dev/null', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 3 },
      { name: 'dev/loop9', type: 'block-device', mode: 0o660, devmajor: 7, devminor: 9 },
      { name: 'run/fifo', type: 'fifo', mode: 0o600 },
    ]);
    const res = await applyLayer(Readable.from(buf), root);
    assert.equal(res.diffId, 'sha256:' + crypto.createHash('sha256').update(buf).digest('hex'));
    assert.equal(res.size, 2 + 4);
    const su = fs.lstatSync(path.join(root, 'bin/su'));
    assert.equal(su.mode & 0o7777, 0o4755);
    assert.equal(su.nlink, 2);
    assert.equal(su.mtime.getTime(), mtime.getTime());
    assert.equal(fs.lstatSync(path.join(root, 'bin/other')).ino, su.ino);
    const t = fs.lstatSync(path.join(root, 'tmp'));
    assert.equal(t.mode & 0o7777, 0o1777);
    assert.equal(t.mtime.getTime(), mtime.getTime());
    const f = fs.lstatSync(path.join(root, 'home/u/f'));
    assert.deepEqual([f.uid, f.gid, f.mode & 0o7777], [1234, 5678, 0o640]);
    assert.equal(sys.getxattr(path.join(root, 'home/u/f'), 'user.note')?.toString(), 'hello');
    assert.equal(fs.readlinkSync(path.join(root, 'sh')), '/bin/su');
    assert.equal(fs.lstatSync(path.join(root, 'sh')).uid, 1234);
    const n = fs.lstatSync(path.join(root, 'dev/null'));
    assert.ok(n.isCharacterDevice());
    assert.equal(n.rdev, Number(sys.makedev(1, 3)));
    const l = fs.lstatSync(path.join(root, 'dev/loop9'));
    assert.ok(l.isBlockDevice());
    assert.equal(l.rdev, Number(sys.makedev(7, 9)));
    assert.ok(fs.lstatSync(path.join(root, 'run/fifo')).isFIFO());
  });

  it('reads gzip layers, hashing the uncompressed bytes', async () => {
    const root = fresh('gz');
    const buf = await makeTar([{ name: 'a', body: 'A'.repeat(100_000) }]);
    const res = await applyLayer(Readable.from(zlib.gzipSync(buf)), root);
    assert.equal(res.diffId, 'sha256:' + crypto.createHash('sha256').update(buf).digest('hex'));
    assert.equal(fs.readFileSync(path.join(root, 'a'), 'utf8').length, 100_000);
  });

  it('turns .wh. entries into overlay whiteouts and opaque dirs', async () => {
    const root = fresh('wh');
    fs.writeFileSync(path.join(root, 'gone'), 'x');
    const buf = await makeTar([
      { name: '.wh.gone' },
      { name: 'd/', type: 'directory' },
      { name: 'd/.wh..wh..opq' },
      { name: 'd/kept', body: 'k' },
    ]);
    await applyLayer(Readable.from(buf), root);
    const wh = fs.lstatSync(path.join(root, 'gone'));
    assert.ok(wh.isCharacterDevice());
    assert.equal(wh.rdev, 0);
    assert.equal(sys.getxattr(path.join(root, 'd'), 'trusted.overlay.opaque')?.toString(), 'y');
    assert.equal(fs.readFileSync(path.join(root, 'd/kept'), 'utf8'), 'k');
    assert.equal(fs.existsSync(path.join(root, '.wh.gone')), false);
  });

  it("whiteouts 'delete' (copy drivers): .wh.x removes x, an opaque dir keeps only this layer's entries", async () => {
    const root = fresh('whdel');
    fs.writeFileSync(path.join(root, 'gone'), 'x');
    fs.mkdirSync(path.join(root, 'tree/deep'), { recursive: true });
    fs.writeFileSync(path.join(root, 'tree/deep/f'), 'f');
    fs.mkdirSync(path.join(root, 'd'));
    fs.writeFileSync(path.join(root, 'd/old'), 'o');
    fs.writeFileSync(path.join(root, 'keep'), 'k');
    const buf = await makeTar([
      { name: '.wh.gone' },
      { name: '.wh.tree' },
      { name: 'd/', type: 'directory' },
      { name: 'd/early', body: 'e' },
      { name: 'd/.wh..wh..opq' },
      { name: 'd/kept', body: 'k' },
    ]);
    await applyLayerOffThread(Readable.from(buf), root, 'delete');
    assert.deepEqual(fs.readdirSync(root).sort(), ['d', 'keep']);
    assert.deepEqual(fs.readdirSync(path.join(root, 'd')).sort(), ['early', 'kept']);
    assert.equal(sys.getxattr(path.join(root, 'd'), 'trusted.overlay.opaque'), null);
  });
});

describe('diffLayer / packDir', () => {
  it('diffLayer emits OCI whiteouts that applyLayer turns back into overlay ones', async () => {
    const upper = fresh('upper');
    fs.mkdirSync(path.join(upper, 'd'));
    sys.setxattr(path.join(upper, 'd'), 'trusted.overlay.opaque', Buffer.from('y'));
    fs.writeFileSync(path.join(upper, 'd/new'), 'n');
    sys.mknod(path.join(upper, 'gone'), sys.S_IFCHR, 0, 0);
    fs.writeFileSync(path.join(upper, 'f'), 'f');
    fs.linkSync(path.join(upper, 'f'), path.join(upper, 'f2'));
    const names = await listTar(diffLayer(upper));
    assert.deepEqual([...names.keys()].sort(), ['.wh.gone', 'd/', 'd/.wh..wh..opq', 'd/new', 'f', 'f2'].sort());
    assert.equal(names.get('f2')?.type, 'link');
    const again = fresh('again');
    await applyLayer(diffLayer(upper), again);
    assert.ok(fs.lstatSync(path.join(again, 'gone')).isCharacterDevice());
    assert.equal(sys.getxattr(path.join(again, 'd'), 'trusted.overlay.opaque')?.toString(), 'y');
    assert.equal(fs.lstatSync(path.join(again, 'f2')).ino, fs.lstatSync(path.join(again, 'f')).ino);
  });

  it('keeps binary xattrs (file capabilities) and long names through packDir -> applyLayer', async () => {
    const src = fresh('bin-src');
    const long = 'd'.repeat(60) + '/' + 'e'.repeat(60) + '/' + 'f'.repeat(90);
    fs.mkdirSync(path.dirname(path.join(src, long)), { recursive: true });
    fs.writeFileSync(path.join(src, long), 'long');
    fs.writeFileSync(path.join(src, 'ping'), 'elf');
    const bin = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x0a, 0x3d, 0x20]);
    // VFS_CAP_REVISION_2 | effective, permitted = cap_net_bind_service (bit 10)
    const cap = Buffer.alloc(20);
    cap.writeUInt32LE(0x02000001, 0);
    cap.writeUInt32LE(1 << 10, 4);
    sys.setxattr(path.join(src, long), 'user.bin', bin);
    sys.setxattr(path.join(src, 'ping'), 'security.capability', cap);
    const dst = fresh('bin-dst');
    await applyLayer(packDir(src), dst);
    assert.equal(fs.readFileSync(path.join(dst, long), 'utf8'), 'long');
    assert.deepEqual(sys.getxattr(path.join(dst, long), 'user.bin'), bin);
    assert.deepEqual(sys.getxattr(path.join(dst, 'ping'), 'security.capability'), cap);
  });

  it('packDir round-trips a tree, identical bytes each time', async () => {
    const src = fresh('src');
    fs.mkdirSync(path.join(src, 'a/b'), { recursive: true });
    fs.writeFileSync(path.join(src, 'a/b/c'), 'ccc', { mode: 0o751 });
    fs.symlinkSync('b/c', path.join(src, 'a/l'));
    sys.setxattr(path.join(src, 'a/b/c'), 'user.k', Buffer.from('v'));
    const one = await applyLayer(packDir(src), fresh('dst'));
    const two = await applyLayer(packDir(src), fresh('dst2'));
    assert.equal(one.diffId, two.diffId);
    const dst = path.join(tmp, 'dst');
    assert.equal(fs.readFileSync(path.join(dst, 'a/b/c'), 'utf8'), 'ccc');
    assert.equal(fs.statSync(path.join(dst, 'a/b/c')).mode & 0o777, 0o751);
    assert.equal(fs.readlinkSync(path.join(dst, 'a/l')), 'b/c');
    assert.equal(sys.getxattr(path.join(dst, 'a/b/c'), 'user.k')?.toString(), 'v');
  });
});

/** Everything applyLayer can set on each path under root: type, mode, owner, size, mtime, content, link target, device, xattrs, hard links. */
function describeTree(root: string): string[] {
  const inodes = new Map<number, string>();
  return listTree(root, '').map((p) => {
    const st = fs.lstatSync(p);
    const rel = path.relative(root, p);
    const xattrs = sys.listxattr(p).sort().map((n) => `${n}=${sys.getxattr(p, n)?.toString('hex')}`).join(',');
    let what = '';
    if (st.isFile()) {
      what = crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
      const first = inodes.get(st.ino);
      if (first) what += ` =${first}`;
      else inodes.set(st.ino, rel);
    } else if (st.isSymbolicLink()) what = `-> ${fs.readlinkSync(p)}`;
    else if (st.isCharacterDevice() || st.isBlockDevice()) what = `dev ${st.rdev}`;
    // Directories' times are the unpack's where the tar does not list them: only files' and links' count.
    const mtime = st.isDirectory() ? '' : String(Math.floor(st.mtimeMs / 1000));
    return `${rel} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.isDirectory() ? '' : st.size} ${mtime} ${what} [${xattrs}]`;
  });
}

describe('packWith(job, into): apply while packing', () => {
  /** An overlay upper dir with one of everything, files of every size class included. */
  function upperDir(name: string): string {
    const upper = fresh(name);
    fs.mkdirSync(path.join(upper, 'd/e'), { recursive: true });
    fs.writeFileSync(path.join(upper, 'd/empty'), '');
    fs.writeFileSync(path.join(upper, 'd/small'), 'small\n', { mode: 0o4755 });
    fs.writeFileSync(path.join(upper, 'd/e/mid'), crypto.randomBytes(100 << 10));
    fs.writeFileSync(path.join(upper, 'big'), crypto.randomBytes((2 << 20) + 12345));
    fs.chownSync(path.join(upper, 'd/e/mid'), 1000, 1001);
    fs.linkSync(path.join(upper, 'd/small'), path.join(upper, 'd/e/hard'));
    fs.symlinkSync('../big', path.join(upper, 'd/sym'));
    sys.mknod(path.join(upper, 'd/gone'), sys.S_IFCHR, 0, 0);
    sys.mknod(path.join(upper, 'fifo'), sys.S_IFIFO | 0o600, 0, 0);
    fs.mkdirSync(path.join(upper, 'opaque'));
    sys.setxattr(path.join(upper, 'opaque'), 'trusted.overlay.opaque', Buffer.from('y'));
    fs.writeFileSync(path.join(upper, 'opaque/kept'), 'k');
    sys.setxattr(path.join(upper, 'd/small'), 'user.bin', Buffer.from([0, 0xff, 0x3d]));
    const long = 'l'.repeat(120);
    fs.writeFileSync(path.join(upper, 'd/e', long), 'long name');
    fs.utimesSync(path.join(upper, 'd/small'), new Date(1_500_000_000_000), new Date(1_500_000_000_000));
    return upper;
  }

  it('applies exactly what unpacking its tar gives, and its diffId is the tar\'s', async () => {
    const upper = upperDir('pw-upper');
    const direct = fresh('pw-direct');
    const packed = packWith((p) => p.tree(upper, '', true), { dir: direct, whiteouts: 'overlay' });
    const chunks: Buffer[] = [];
    for await (const c of packed.tar) chunks.push(c as Buffer);
    const tarBytes = Buffer.concat(chunks);
    const result = await packed.done;
    const unpacked = fresh('pw-unpacked');
    const viaTar = await applyLayer(Readable.from([tarBytes]), unpacked);
    assert.equal(result.diffId, `sha256:${crypto.createHash('sha256').update(tarBytes).digest('hex')}`);
    assert.deepEqual(result, viaTar);
    assert.deepEqual(describeTree(direct), describeTree(unpacked));
    // The same tar as the plain packer's, and the tree really has what the upper dir had.
    const plain: Buffer[] = [];
    for await (const c of diffLayer(upper)) plain.push(c as Buffer);
    assert.ok(Buffer.concat(plain).equals(tarBytes));
    assert.ok(fs.lstatSync(path.join(direct, 'd/gone')).isCharacterDevice());
    assert.equal(sys.getxattr(path.join(direct, 'opaque'), 'trusted.overlay.opaque')?.toString(), 'y');
    assert.equal(fs.lstatSync(path.join(direct, 'd/e/hard')).ino, fs.lstatSync(path.join(direct, 'd/small')).ino);
    assert.ok(fs.readFileSync(path.join(direct, 'big')).equals(fs.readFileSync(path.join(upper, 'big'))));
    // A copy, not links into the source: writing the source later changes nothing applied.
    fs.appendFileSync(path.join(upper, 'd/small'), 'more');
    assert.equal(fs.readFileSync(path.join(direct, 'd/small'), 'utf8'), 'small\n');
  });

  it("whiteouts 'delete' onto a full tree: the same as unpacking the tar there", async () => {
    const upper = upperDir('pw-del-upper');
    const base = (name: string): string => {
      const t = fresh(name);
      fs.mkdirSync(path.join(t, 'd'));
      fs.writeFileSync(path.join(t, 'd/gone'), 'to be deleted');
      fs.mkdirSync(path.join(t, 'opaque/old'), { recursive: true });
      fs.writeFileSync(path.join(t, 'big'), 'replaced');
      return t;
    };
    const direct = base('pw-del-direct');
    const packed = packWith((p) => p.tree(upper, '', true), { dir: direct, whiteouts: 'delete' });
    const unpacked = base('pw-del-unpacked');
    const viaTar = await applyLayer(packed.tar, unpacked, 'delete');
    assert.deepEqual(await packed.done, viaTar);
    assert.deepEqual(describeTree(direct), describeTree(unpacked));
    assert.equal(fs.existsSync(path.join(direct, 'd/gone')), false);
    assert.deepEqual(fs.readdirSync(path.join(direct, 'opaque')), ['kept']);
  });

  it('a reader that goes away stops the packer, which reports it', async () => {
    const upper = upperDir('pw-stop-upper');
    const packed = packWith((p) => p.tree(upper, '', true), { dir: fresh('pw-stop'), whiteouts: 'overlay' });
    packed.tar.once('data', () => packed.tar.destroy());
    packed.tar.on('error', () => {});
    await assert.rejects(packed.done, (err: Error) => err.name === 'AbortError');
  });
});

describe('applyLayerOffThread', () => {
  it('unpacks on a worker exactly what applyLayer unpacks in process', async () => {
    const files = Array.from({ length: 300 }, (_, i) => ({ name: `d${i % 7}/f${i}`, body: crypto.randomBytes(i * 37).toString('hex') }));
    const buf = zlib.gzipSync(await makeTar([{ name: 'd0/', type: 'directory', mode: 0o750 }, ...files, { name: 'd1/.wh.f1' }]));
    // Fed in small pieces, as a socket would, so batching and credit both come into play.
    const pieces = (b: Buffer) => Readable.from((function* () { for (let o = 0; o < b.length; o += 4096) yield b.subarray(o, o + 4096); })());
    const inproc = fresh('inproc');
    const worker = fresh('worker');
    const here = await applyLayer(pieces(buf), inproc);
    const there = await applyLayerOffThread(pieces(buf), worker);
    assert.deepEqual(there, here);
    const rel = (root: string) => listTree(root, '').map((p) => {
      const st = fs.lstatSync(p);
      // Directories the tar does not list, and whiteouts, get the time of the unpack.
      return `${path.relative(root, p)} ${st.mode.toString(8)} ${st.size} ${st.isFile() ? st.mtimeMs : ''}`;
    });
    assert.deepEqual(rel(worker), rel(inproc));
    for (const f of files.filter((x) => x.name !== 'd1/f1')) assert.equal(fs.readFileSync(path.join(worker, f.name), 'utf8'), f.body);
  });

  it('keeps the error class of a bad tar (a 400 stays a 400) and the source\'s own error', async () => {
    const bad = await makeTar([{ name: 'x', type: 'symlink', linkname: 'y' }, { name: 'weird', type: 'contiguous-file', body: 'z' }, { name: 'a/.wh..' }]);
    await assert.rejects(applyLayerOffThread(Readable.from([bad]), fresh('bad')), (err: Error) => err instanceof InvalidParameter && /invalid whiteout name/.test(err.message));
    const broken = new Readable({ read() {} });
    broken.push(Buffer.alloc(4096));
    setTimeout(() => broken.destroy(new Error('connection reset by the registry')), 50);
    await assert.rejects(applyLayerOffThread(broken, fresh('broken')), /connection reset by the registry/);
  });
});
