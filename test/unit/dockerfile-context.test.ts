/** .dockerignore rules and the build context's path resolution (COPY sources never leave the context). */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { IgnoreRules } from '../../src/build/dockerignore.js';
import { BuildContext, matchPath } from '../../src/build/context.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-ctx-unit-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('.dockerignore: anchored patterns, *, ?, **, parents cover children, ! exceptions, last match wins', () => {
  const r = IgnoreRules.parse('# comment\n\n  *.log  \n/secret\nbuild\n!build/keep.txt\n**/tmp\ndocs/*.md\n!docs/README.md\na?c\n');
  const cases: [string, boolean][] = [
    ['x.log', true], ['sub/x.log', false], ['secret', true], ['sub/secret', false],
    ['build', true], ['build/drop.txt', true], ['build/keep.txt', false], ['build/deep/keep.txt', true],
    ['tmp', true], ['a/b/tmp', true], ['a/b/tmp/file', true], ['docs/x.md', true], ['docs/README.md', false],
    ['docs/sub/x.md', false], ['abc', true], ['abbc', false], ['Dockerfile', false],
  ];
  for (const [p, want] of cases) assert.equal(r.excludes(p), want, p);
  assert.equal(r.mayReinclude('build'), true);
  assert.equal(IgnoreRules.parse('build\n').mayReinclude('build'), false);
  assert.equal(IgnoreRules.parse('*\n!src/**\n').excludes('src/a/b.ts'), false);
  assert.equal(IgnoreRules.parse('*\n!src/**\n').excludes('other'), true);
  assert.equal(IgnoreRules.parse('./x\n').excludes('x'), true);
});

test('wildcards match within one path component, like Go filepath.Match', () => {
  assert.equal(matchPath('*.txt', 'a.txt'), true);
  assert.equal(matchPath('*.txt', 'd/a.txt'), false);
  assert.equal(matchPath('f?le[0-9]', 'file7'), true);
  assert.equal(matchPath('[!a]*', 'abc'), false);
});

test('context sources: .. refused, symlinks and absolute names resolved inside the context', () => {
  const root = fs.mkdtempSync(path.join(tmp, 'ctx-'));
  fs.writeFileSync(path.join(tmp, 'outside'), 'secret');
  fs.mkdirSync(path.join(root, 'd'));
  fs.writeFileSync(path.join(root, 'd', 'f.txt'), 'in');
  fs.writeFileSync(path.join(root, 'g.txt'), 'g');
  fs.symlinkSync(path.join(tmp, 'outside'), path.join(root, 'abs-link'));
  fs.symlinkSync('../outside', path.join(root, 'rel-link'));
  fs.symlinkSync('d/f.txt', path.join(root, 'ok-link'));
  const ctx = new BuildContext(root);
  assert.throws(() => ctx.sources('../outside'), /forbidden path outside the build context/);
  assert.throws(() => ctx.sources('d/../../outside'), /forbidden path outside the build context/);
  assert.throws(() => ctx.sources('abs-link'), /file not found in build context/);
  assert.throws(() => ctx.sources('rel-link'), /file not found in build context/);
  assert.throws(() => ctx.sources(path.join(tmp, 'outside')), /file not found in build context/);
  assert.equal(ctx.sources('ok-link')[0]!.abs, path.join(root, 'd', 'f.txt'));
  assert.equal(ctx.sources('/g.txt')[0]!.abs, path.join(root, 'g.txt'));
  assert.deepEqual(ctx.sources('*.txt').map((s) => s.rel), ['g.txt']);
  assert.deepEqual(ctx.sources('*/*.txt').map((s) => s.rel), ['d/f.txt']);
  assert.throws(() => ctx.sources('*.none'), /no source files were specified/);
});

test('context digests change with content and mode, not with mtime', async () => {
  const root = fs.mkdtempSync(path.join(tmp, 'ctx-'));
  const f = path.join(root, 'f');
  fs.writeFileSync(f, 'one');
  const digest = async () => new BuildContext(root).digest(new BuildContext(root).sources('f')[0]!);
  const a = await digest();
  fs.utimesSync(f, new Date(1000), new Date(1000));
  assert.equal(await digest(), a);
  fs.chmodSync(f, 0o600);
  const b = await digest();
  assert.notEqual(b, a);
  fs.writeFileSync(f, 'two');
  assert.notEqual(await digest(), b);
});
