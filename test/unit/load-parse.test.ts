/** How load reads an unpacked archive: docker's manifest.json first, else the OCI index (nested indexes, annotations). */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readArchive } from '../../src/image/load.js';

let dir: string;
before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-load-parse-'))));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function fresh(name: string): string {
  const d = path.join(dir, name);
  fs.mkdirSync(path.join(d, 'blobs/sha256'), { recursive: true });
  return d;
}

/** Writes a JSON blob; returns its digest. */
function blob(root: string, v: unknown): string {
  const b = Buffer.from(JSON.stringify(v));
  const hex = crypto.createHash('sha256').update(b).digest('hex');
  fs.writeFileSync(path.join(root, 'blobs/sha256', hex), b);
  return `sha256:${hex}`;
}

describe('readArchive', () => {
  it('takes docker\'s manifest.json (any layout of paths) and its RepoTags', () => {
    const r = fresh('docker');
    fs.writeFileSync(path.join(r, 'manifest.json'), JSON.stringify([{ Config: 'abc.json', RepoTags: ['a:1', 'b:2'], Layers: ['x/layer.tar'] }, { Config: 'def.json', RepoTags: null, Layers: [] }]));
    fs.writeFileSync(path.join(r, 'index.json'), '{"manifests":[]}');
    assert.deepEqual(readArchive(r, 'amd64'), [
      { config: 'abc.json', layers: ['x/layer.tar'], tags: ['a:1', 'b:2'] },
      { config: 'def.json', layers: [], tags: [] },
    ]);
  });

  it('without manifest.json follows index.json to manifests, picking this platform from a nested index', () => {
    const r = fresh('oci');
    const cfg = blob(r, { rootfs: { diff_ids: [] } });
    const mk = (layer: string) => blob(r, { schemaVersion: 2, config: { digest: cfg }, layers: [{ digest: layer }] });
    const amd = mk('sha256:' + 'a'.repeat(64));
    const arm = mk('sha256:' + 'b'.repeat(64));
    const nested = blob(r, { manifests: [{ digest: arm, platform: { os: 'linux', architecture: 'arm64' } }, { digest: amd, platform: { os: 'linux', architecture: 'amd64' } }] });
    fs.writeFileSync(path.join(r, 'index.json'), JSON.stringify({ manifests: [
      { digest: nested, annotations: { 'io.containerd.image.name': 'docker.io/library/multi:1', 'org.opencontainers.image.ref.name': '1' } },
      { digest: nested, annotations: { 'io.containerd.image.name': 'docker.io/library/multi:2' } },
      { digest: arm, annotations: { 'org.opencontainers.image.ref.name': 'latest' } },
      { digest: amd, annotations: { 'org.opencontainers.image.ref.name': 'skopeo/name:tag' } },
    ] }));
    const got = readArchive(r, 'amd64');
    assert.deepEqual(got[0], { config: `blobs/sha256/${cfg.slice(7)}`, layers: [`blobs/sha256/${'a'.repeat(64)}`], tags: ['docker.io/library/multi:1', 'docker.io/library/multi:2'] });
    assert.deepEqual(got[1]!.tags, [], 'a bare tag names no repository');
    assert.deepEqual(got[2]!.tags, ['skopeo/name:tag']);
  });

  it('says what is wrong with an archive it cannot read', () => {
    assert.throws(() => readArchive(fresh('empty'), 'amd64'), /neither manifest.json nor index.json/);
    const r = fresh('broken');
    fs.writeFileSync(path.join(r, 'manifest.json'), '{not json');
    assert.throws(() => readArchive(r, 'amd64'), /manifest.json is not JSON/);
    const r2 = fresh('dangling');
    fs.writeFileSync(path.join(r2, 'index.json'), JSON.stringify({ manifests: [{ digest: 'sha256:' + 'c'.repeat(64) }] }));
    assert.throws(() => readArchive(r2, 'amd64'), /blobs\/sha256\/c+ is missing/);
  });
});
