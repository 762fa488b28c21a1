/** Container path resolution for cp and the archive API, and the ../ check on incoming tars. */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { checkTarMembers, climbsOut, extractTar } from '../../src/archive/index.js';
import { locate, resolvePath, statResolved, goFileMode, GO_MODE } from '../../src/container/archive.js';
import type { Container } from '../../src/container/types.js';
import { makeTar } from '../tar-fixtures.js';

let root: string;
let outside: string;
const c = { name: 'box' } as Container;

before(() => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-fs-paths-'));
  root = path.join(base, 'root');
  outside = path.join(base, 'outside');
  fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(root, 'etc/passwd'), 'inside\n');
  fs.writeFileSync(path.join(outside, 'passwd'), 'outside\n');
  fs.symlinkSync('/', path.join(root, 'escape'));
  fs.symlinkSync('../../../../etc', path.join(root, 'up'));
  fs.symlinkSync(outside, path.join(root, 'abs-out'));
  fs.symlinkSync('../outside', path.join(root, 'rel-out'));
});

after(() => fs.rmSync(path.dirname(root), { recursive: true, force: true }));

describe('resolvePath', () => {
  it('resolves symlinks in the directory part inside the root', () => {
    assert.equal(resolvePath(root, '/escape/etc/passwd').host, path.join(root, 'etc/passwd'));
    assert.equal(resolvePath(root, '/up/passwd').host, path.join(root, 'etc/passwd'));
    assert.equal(resolvePath(root, '../../../etc/passwd').host, path.join(root, 'etc/passwd'));
    // A link to a host path is taken as a path in the container, which has no such file.
    assert.equal(resolvePath(root, '/abs-out/passwd').host, path.join(root, outside, 'passwd'));
    assert.equal(resolvePath(root, '/rel-out/passwd').host, path.join(root, 'outside/passwd'));
  });

  it('looks at the last component without following it, unless the path ends in / or /.', () => {
    const link = resolvePath(root, '/escape');
    assert.equal(link.host, path.join(root, 'escape'));
    assert.equal(link.member, 'escape');
    assert.equal(resolvePath(root, '/escape/').host, root);
    const dot = resolvePath(root, '/up/.');
    assert.equal(dot.host, path.join(root, 'etc'));
    assert.equal(dot.member, '.');
    assert.equal(dot.abs, '/up/.');
    assert.equal(resolvePath(root, '/').member, '.');
  });

  it('stats like docker: symlinks carry their target inside the container, missing paths say so', () => {
    const { stat } = statResolved(root, resolvePath(root, '/up'), c);
    assert.equal(stat.name, 'up');
    assert.equal(stat.linkTarget, '/etc');
    assert.ok(stat.mode >= GO_MODE.symlink && stat.mode < GO_MODE.dir);
    assert.equal(statResolved(root, resolvePath(root, '/escape'), c).stat.linkTarget, '/');
    assert.throws(() => statResolved(root, resolvePath(root, '/abs-out/passwd'), c), /Could not find the file \/abs-out\/passwd in container box/);
    assert.throws(() => statResolved(root, resolvePath(root, '/etc/passwd/'), c), /not a directory/);
    assert.equal(goFileMode(fs.lstatSync(path.join(root, 'etc'))), GO_MODE.dir + (fs.lstatSync(path.join(root, 'etc')).mode & 0o777));
  });
});

describe('incoming tars', () => {
  it('climbsOut: only names that go above their root', () => {
    for (const n of ['../x', 'a/../../x', '/../x', './../x']) assert.ok(climbsOut(n), n);
    for (const n of ['x', '/etc/x', 'a/../x', 'a/b/../../x', './x', '..x/y']) assert.ok(!climbsOut(n), n);
  });

  it('checkTarMembers refuses ../ names, ../ hard links and a member cut short', async () => {
    await assert.rejects(checkTarMembers(Readable.from([await makeTar([{ name: 'ok' }, { name: '../evil' }])])), /"..\/evil".*outside/);
    await assert.rejects(checkTarMembers(Readable.from([await makeTar([{ name: 'l', type: 'link', linkname: '../../x' }])])), /hard link/);
    const full = await makeTar([{ name: 'big', body: 'y'.repeat(5000) }]);
    await assert.rejects(checkTarMembers(Readable.from([full.subarray(0, 2048)])), /invalid tar archive/);
    assert.deepEqual(await checkTarMembers(Readable.from([full])), { members: 1 });
  });

  it('extractTar writes through symlinks inside the root only, and renames and re-owns as asked', async () => {
    const t = await makeTar([{ name: 'src/', type: 'directory' }, { name: 'src/passwd', body: 'new\n', uid: 1000, gid: 1000 }]);
    await extractTar(Readable.from([t]), root, { base: 'up', rename: (n) => n.replace(/^src/, 'dst'), owner: { uid: 0, gid: 0 } });
    const written = path.join(root, 'etc/dst/passwd');
    assert.equal(fs.readFileSync(written, 'utf8'), 'new\n');
    assert.equal(fs.statSync(written).uid, 0);
    assert.equal(fs.readFileSync(path.join(outside, 'passwd'), 'utf8'), 'outside\n');
    const clash = await makeTar([{ name: 'etc', body: 'file over a dir' }]);
    await assert.rejects(extractTar(Readable.from([clash]), root, { noOverwriteDirNonDir: true }), /cannot overwrite directory "\/etc" with non-directory/);
    assert.ok(fs.statSync(path.join(root, 'etc')).isDirectory());
  });
});

describe('locate (paths inside volumes and binds)', () => {
  const mounts = [
    { destination: '/data', source: '/var/lib/berth/volumes/v1/_data', readOnly: false },
    { destination: '/data/ro/', source: '/srv/ro', readOnly: true },
  ];
  it('picks the deepest mount holding the path, and the path inside it', () => {
    assert.deepEqual(locate(mounts, '/data/x/y'), { mount: mounts[0], path: '/x/y' });
    assert.equal(locate(mounts, '/data/ro/z').mount?.source, '/srv/ro');
    assert.equal(locate(mounts, '/data/ro/z').path, '/z');
    assert.deepEqual(locate(mounts, '/data'), { mount: mounts[0], path: '/' });
    assert.equal(locate(mounts, '/data/.').path, '/.');
    assert.equal(locate(mounts, '/data/x/').path, '/x/');
  });
  it('leaves other paths, and look-alike prefixes, in the container root', () => {
    assert.deepEqual(locate(mounts, '/database/x'), { mount: null, path: '/database/x' });
    assert.deepEqual(locate(mounts, 'etc/passwd'), { mount: null, path: 'etc/passwd' });
    assert.equal(locate(mounts, '/x/../data/f').mount?.source, mounts[0]!.source);
  });
  it('stat names container paths, not paths inside the mount', () => {
    assert.throws(() => statResolved(root, resolvePath(root, '/missing'), c, '/data'), /Could not find the file \/data\/missing in container box/);
    assert.equal(statResolved(root, resolvePath(root, '/up'), c, '/data').stat.linkTarget, '/data/etc');
  });
});

describe('cp placement (the docker CLI\'s rules)', async () => {
  const { placeCopy, splitCpArg, splitPathDirEntry } = await import('../../src/cli/commands/fs.js');
  it('splitCpArg: container:path, but absolute and ./ paths are local', () => {
    assert.deepEqual(splitCpArg('web:/etc/passwd'), { container: 'web', path: '/etc/passwd' });
    assert.deepEqual(splitCpArg('/tmp/a:b'), { container: '', path: '/tmp/a:b' });
    assert.deepEqual(splitCpArg('./a:b'), { container: '', path: './a:b' });
    assert.deepEqual(splitCpArg('-'), { container: '', path: '-' });
  });
  it('splitPathDirEntry keeps "." for a trailing /.', () => {
    assert.deepEqual(splitPathDirEntry('/etc/.'), { dir: '/etc', base: '.' });
    assert.deepEqual(splitPathDirEntry('/etc/'), { dir: '/', base: 'etc' });
    assert.deepEqual(splitPathDirEntry('/'), { dir: '/', base: '.' });
  });
  it('placeCopy: into an existing dir as is, else renamed to the destination, with docker\'s errors', () => {
    assert.deepEqual(placeCopy('tree', true, { path: '/tmp', exists: true, isDir: true }), { dir: '/tmp', name: 'tree' });
    assert.deepEqual(placeCopy('tree', true, { path: '/tmp/new', exists: false, isDir: false }), { dir: '/tmp', name: 'new' });
    assert.deepEqual(placeCopy('f', false, { path: '/tmp/g', exists: true, isDir: false }), { dir: '/tmp', name: 'g' });
    assert.throws(() => placeCopy('tree', true, { path: '/tmp/g', exists: true, isDir: false }), /cannot copy directory/);
    assert.throws(() => placeCopy('f', false, { path: '/tmp/nodir/', exists: false, isDir: false }), /no such directory/);
  });
});
