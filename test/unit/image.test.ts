import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import BetterSqlite3 from 'better-sqlite3';
import tarStream from 'tar-stream';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { openContentStore, type ContentStore } from '../../src/content/index.js';
import {
  chainIds, importImage, openImageStore, type ContainerUse, type ImageStore, type LayerStore,
} from '../../src/image/index.js';
import { Conflict, InvalidParameter, NotFound } from '../../src/errors.js';
import type { Info, LayerTarget, StagedLayer } from '../../src/storage/index.js';
import { killMidway } from '../kill9.js';

type LayerInfo = Info & { chainId: string; diffId: string };

const sha = (b: Buffer | string): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

/** In-memory stand-in for storage/: diff ID = sha256 of the tar bytes; refuses to drop a layer with children or in use. */
class FakeLayers implements LayerStore, LayerTarget {
  layers = new Map<string, LayerInfo>();
  inUse = new Set<string>();
  stat(chainId: string): LayerInfo | null { return this.layers.get(chainId) ?? null; }
  async applyLayer(parent: string | null, tar: Readable): Promise<LayerInfo> {
    return (await this.stageLayer(tar)).commit(parent) as LayerInfo;
  }
  async stageLayer(tar: Readable): Promise<StagedLayer> {
    const chunks: Buffer[] = [];
    for await (const c of tar) chunks.push(c as Buffer);
    const bytes = Buffer.concat(chunks);
    const diffId = sha(bytes);
    return {
      diffId, size: bytes.length, discard: () => {},
      commit: (parent) => {
        const chainId = parent ? chainIds([parent, diffId])[1]! : diffId;
        const info = { name: chainId, kind: 'committed' as const, chainId, diffId, parent, size: bytes.length };
        this.layers.set(chainId, info);
        return info;
      },
    };
  }
  prepare(): never { throw new Error('unused: stageLayer is there'); }
  commit(): never { throw new Error('unused: stageLayer is there'); }
  async remove(chainId: string): Promise<void> {
    if (!this.layers.has(chainId)) throw new NotFound(`layer ${chainId} not found`);
    if (this.inUse.has(chainId) || [...this.layers.values()].some((l) => l.parent === chainId)) throw new Conflict('layer in use');
    this.layers.delete(chainId);
  }
}

async function makeTar(files: Record<string, string>): Promise<Buffer> {
  const pack = tarStream.pack();
  for (const [name, body] of Object.entries(files)) pack.entry({ name, mode: 0o755 }, body);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

interface Env { dir: string; dbPath: string; db: BetterSqlite3.Database; content: ContentStore; layers: FakeLayers; store: ImageStore }

function setup(t: { after(fn: () => void): void }): Env {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-image-'));
  const dbPath = path.join(dir, 'berth.db');
  const db = new BetterSqlite3(dbPath);
  const content = openContentStore(path.join(dir, 'content'));
  const layers = new FakeLayers();
  const env: Env = { dir, dbPath, db, content, layers, store: openImageStore(db, content, layers) };
  t.after(() => {
    env.db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return env;
}

let counter = 0;
async function imp(env: Env, ref?: string, extra: { changes?: string[]; gzip?: boolean; files?: Record<string, string> } = {}) {
  let tar = await makeTar(extra.files ?? { 'bin/hello': `hello ${counter++}` });
  if (extra.gzip) tar = gzipSync(tar);
  return importImage(env.store, env.content, env.layers, Readable.from([tar]), { ref, changes: extra.changes });
}

const none = (): ContainerUse[] => [];

/** OCI schemas are draft-04 and name each other by relative file name; give each its file name as $id. */
function ociValidators(): { config: ValidateFunction; manifest: ValidateFunction } {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const dir = path.resolve(here, '../../../shared/reference/oci-image-schema');
  const schemaDir = fs.existsSync(dir) ? dir : '/work/shared/reference/oci-image-schema';
  const base = 'https://opencontainers.org/schema/image/';
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (v && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) if (k !== 'id' && k !== '$schema') out[k] = strip(x);
      return out;
    }
    return v;
  };
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats.default(ajv);
  for (const f of fs.readdirSync(schemaDir).filter((n) => n.endsWith('.json'))) {
    const s = strip(JSON.parse(fs.readFileSync(path.join(schemaDir, f), 'utf8'))) as Record<string, unknown>;
    ajv.addSchema({ ...s, $id: base + f });
  }
  return { config: ajv.getSchema(base + 'config-schema.json')!, manifest: ajv.getSchema(base + 'image-manifest-schema.json')! };
}

test('import writes a layer blob, an OCI config and an OCI manifest that validate', async (t) => {
  const env = setup(t);
  const tar = await makeTar({ 'bin/sh': 'shell', 'etc/hostname': 'x' });
  const img = await importImage(env.store, env.content, env.layers, Readable.from([tar]), {
    ref: 'busybox',
    message: 'my import',
    changes: [
      'CMD ["sh", "-c", "echo hi"]', 'ENTRYPOINT /bin/tini --', 'ENV A=1 B="two words"', 'ENV LEGACY some value',
      'WORKDIR /srv', 'WORKDIR app', 'USER nobody', 'LABEL com.x="y z" k=v', 'EXPOSE 80 53/udp 8000-8001',
      'VOLUME ["/data", "/logs"]', 'STOPSIGNAL SIGTERM',
    ],
  });
  assert.match(img.id, /^sha256:[a-f0-9]{64}$/);
  assert.deepEqual(img.repoTags, ['busybox:latest']);
  assert.deepEqual(img.repoDigests, []);
  assert.equal(img.size, tar.length);
  assert.deepEqual(img.layers, [{ diffId: sha(tar), chainId: sha(tar), size: tar.length }]);
  assert.deepEqual(img.config.config, {
    Cmd: ['sh', '-c', 'echo hi'],
    Entrypoint: ['/bin/sh', '-c', '/bin/tini --'],
    Env: ['A=1', 'B=two words', 'LEGACY=some value'],
    WorkingDir: '/srv/app',
    User: 'nobody',
    Labels: { 'com.x': 'y z', k: 'v' },
    ExposedPorts: { '80/tcp': {}, '53/udp': {}, '8000/tcp': {}, '8001/tcp': {} },
    Volumes: { '/data': {}, '/logs': {} },
    StopSignal: 'SIGTERM',
  });

  // The image ID is the digest of the config blob; the manifest points at the config and the layer.
  const configRaw = await env.content.read(img.id);
  assert.equal(sha(configRaw), img.id);
  const config = JSON.parse(configRaw.toString());
  assert.deepEqual(config.rootfs, { type: 'layers', diff_ids: [sha(tar)] });
  assert.equal(config.os, 'linux');
  assert.equal(config.history[0].comment, 'my import');
  assert.ok((await env.content.read(sha(tar))).equals(tar), 'layer blob is the uncompressed tar');
  assert.ok(img.manifestDigest);
  const manifest = JSON.parse((await env.content.read(img.manifestDigest)).toString());
  assert.equal(manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.deepEqual(manifest.config, { mediaType: 'application/vnd.oci.image.config.v1+json', digest: img.id, size: configRaw.length });
  assert.deepEqual(manifest.layers, [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(tar), size: tar.length }]);

  const v = ociValidators();
  assert.ok(v.config(config), JSON.stringify(v.config.errors));
  assert.ok(v.manifest(manifest), JSON.stringify(v.manifest.errors));
  assert.equal(v.manifest({ ...(manifest as object), schemaVersion: 1 }), false, 'the validator does reject bad manifests');
});

test('import of a gzipped tar yields the same layer as the plain tar; platform is honoured', async (t) => {
  const env = setup(t);
  const tar = await makeTar({ a: 'same' });
  const plain = await importImage(env.store, env.content, env.layers, Readable.from([tar]), {});
  const gz = await importImage(env.store, env.content, env.layers, Readable.from([gzipSync(tar)]), { platform: 'linux/arm64/v8' });
  assert.deepEqual(gz.layers, plain.layers);
  assert.equal(gz.config.architecture, 'arm64');
  assert.equal(gz.config.variant, 'v8');
  assert.deepEqual(gz.repoTags, []);
  assert.deepEqual(fs.readdirSync(path.join(env.dir, 'content', 'ingest')), []);
});

test('import refuses bad changes and bad names before reading the tar', async (t) => {
  const env = setup(t);
  await assert.rejects(imp(env, undefined, { changes: ['FROM scratch'] }), (e: unknown) =>
    e instanceof InvalidParameter && e.message === 'FROM is not a valid change command');
  await assert.rejects(imp(env, 'Upper'), InvalidParameter);
  assert.equal(env.store.list().length, 0);
  assert.equal(env.layers.layers.size, 0);
});

test('resolve by ID, short ID, prefix, name, name:tag, name@digest', async (t) => {
  const env = setup(t);
  const img = await imp(env, 'localhost:5000/app:v1');
  const hex = img.id.slice(7);
  for (const s of [img.id, hex, hex.slice(0, 12), hex.slice(0, 1), 'sha256:' + hex.slice(0, 5), 'localhost:5000/app:v1']) {
    assert.equal(env.store.resolve(s).id, img.id, s);
  }
  assert.throws(() => env.store.resolve('localhost:5000/app'), (e: unknown) =>
    e instanceof NotFound && e.message === 'No such image: localhost:5000/app');
  assert.throws(() => env.store.resolve('sha256:' + 'f'.repeat(64)), NotFound);
  assert.throws(() => env.store.resolve('Nope'), InvalidParameter);

  // A digest reference (as a pull would record) resolves too.
  const repoDigest = 'localhost:5000/app@' + img.manifestDigest;
  env.store.add(img.id, { repoDigest });
  assert.deepEqual(env.store.get(img.id)!.repoDigests, [repoDigest]);
  assert.equal(env.store.resolve(repoDigest).id, img.id);
  assert.equal(env.store.resolve(`localhost:5000/app:v1@${img.manifestDigest}`).id, img.id);

  // A tag that looks like an ID prefix wins over the prefix, like docker.
  const other = await imp(env);
  env.store.tag(other.id, hex.slice(0, 6));
  assert.equal(env.store.resolve(hex.slice(0, 6)).id, other.id);

  // An ambiguous prefix is not found.
  const ids = [img.id, other.id];
  for (let i = 0; i < 40; i++) ids.push((await imp(env)).id);
  const firsts = new Map<string, number>();
  for (const id of ids) firsts.set(id[7]!, (firsts.get(id[7]!) ?? 0) + 1);
  const shared = [...firsts].find(([, n]) => n > 1)![0];
  assert.throws(() => env.store.resolve(shared), NotFound);
});

test('tag moves a name between images; untag returns where it pointed', async (t) => {
  const env = setup(t);
  const a = await imp(env, 'app');
  const b = await imp(env);
  env.store.tag(a.id, 'app:v2');
  env.store.tag(a.id, 'docker.io/me/app');
  assert.deepEqual(env.store.get(a.id)!.repoTags, ['app:latest', 'app:v2', 'me/app:latest']);
  env.store.tag(b.id.slice(7, 19), 'app');
  assert.deepEqual(env.store.get(a.id)!.repoTags, ['app:v2', 'me/app:latest']);
  assert.deepEqual(env.store.get(b.id)!.repoTags, ['app:latest']);
  assert.throws(() => env.store.tag(a.id, `app@${a.id}`), InvalidParameter);
  assert.throws(() => env.store.tag('nonexistent', 'x'), NotFound);
  assert.equal(env.store.untag('app:v2'), a.id);
  assert.equal(env.store.untag('app:v2'), null);
  assert.equal(env.store.list().length, 2);
});

test('history lists config history newest first with layer sizes', async (t) => {
  const env = setup(t);
  const tar = await makeTar({ x: 'y' });
  const l = await env.layers.applyLayer(null, Readable.from([tar]));
  const config = {
    architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [l.diffId] },
    history: [
      { created: '2024-01-01T00:00:00Z', created_by: '/bin/sh -c #(nop) ADD file:abc in /' },
      { created: '2024-01-02T00:00:00Z', created_by: '/bin/sh -c #(nop)  CMD ["sh"]', empty_layer: true, comment: 'c' },
    ],
  };
  const cfg = await env.content.put(JSON.stringify(config));
  const img = env.store.add(cfg.digest, { tags: ['h:1'] });
  assert.deepEqual(env.store.history('h:1'), [
    { Id: img.id, Created: 1704153600, CreatedBy: '/bin/sh -c #(nop)  CMD ["sh"]', Tags: ['h:1'], Size: 0, Comment: 'c' },
    { Id: '<missing>', Created: 1704067200, CreatedBy: '/bin/sh -c #(nop) ADD file:abc in /', Tags: null, Size: tar.length, Comment: '' },
  ]);
});

test('add refuses images whose layers are not in storage', async (t) => {
  const env = setup(t);
  const cfg = await env.content.put(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha('nope')] } }));
  assert.throws(() => env.store.add(cfg.digest), NotFound);
  assert.throws(() => env.store.add(sha('no config')), NotFound);
  assert.equal(env.store.list().length, 0);
});

test('rmi: a name of an image with other names only untags', async (t) => {
  const env = setup(t);
  const img = await imp(env, 'busybox');
  env.store.tag(img.id, 'busybox:1');
  assert.deepEqual(await env.store.remove('busybox', { force: false, noprune: false }, none), [{ Untagged: 'busybox:latest' }]);
  assert.deepEqual(env.store.get(img.id)!.repoTags, ['busybox:1']);
});

test('rmi: the last name deletes the image, its layers and its blobs', async (t) => {
  const env = setup(t);
  const img = await imp(env, 'busybox');
  const chain = img.layers[0]!.chainId;
  const res = await env.store.remove('busybox:latest', { force: false, noprune: false }, none);
  assert.deepEqual(res, [{ Untagged: 'busybox:latest' }, { Deleted: img.id }, { Deleted: chain }]);
  assert.equal(env.store.get(img.id), null);
  assert.equal(env.layers.stat(chain), null);
  const blobs = [];
  for await (const b of env.content.list()) blobs.push(b);
  assert.deepEqual(blobs, []);
  await assert.rejects(env.store.remove('busybox', { force: false, noprune: false }, none), NotFound);
});

test('rmi: shared layers and blobs stay while another image uses them', async (t) => {
  const env = setup(t);
  const files = { shared: 'bytes' };
  const a = await imp(env, 'a', { files });
  const b = await imp(env, 'b', { files, changes: ['CMD ["x"]'] });
  assert.notEqual(a.id, b.id);
  assert.deepEqual(await env.store.remove('a', { force: false, noprune: false }, none), [{ Untagged: 'a:latest' }, { Deleted: a.id }]);
  assert.ok(env.layers.stat(b.layers[0]!.chainId));
  assert.ok(env.content.has(b.layers[0]!.diffId));
  assert.equal(env.content.has(a.id), false);
});

test('rmi by ID: several repositories need force', async (t) => {
  const env = setup(t);
  const img = await imp(env, 'one');
  env.store.tag(img.id, 'two');
  const short = img.id.slice(7, 19);
  await assert.rejects(env.store.remove(short, { force: false, noprune: false }, none), (e: unknown) =>
    e instanceof Conflict && e.message === `conflict: unable to delete ${short} (must be forced) - image is referenced in multiple repositories`);
  const res = await env.store.remove(short, { force: true, noprune: false }, none);
  assert.deepEqual(res.slice(0, 3), [{ Untagged: 'one:latest' }, { Untagged: 'two:latest' }, { Deleted: img.id }]);
  assert.equal(env.store.list().length, 0);
});

test('rmi by ID: one repository (tag + digest) untags everything and deletes', async (t) => {
  const env = setup(t);
  const img = await imp(env, 'one');
  env.store.add(img.id, { repoDigest: `one@${img.manifestDigest}` });
  const res = await env.store.remove(img.id, { force: false, noprune: false }, none);
  assert.deepEqual(res.slice(0, 3), [{ Untagged: 'one:latest' }, { Untagged: `one@${img.manifestDigest}` }, { Deleted: img.id }]);
});

test('rmi: removing the last tag also drops that repository digest references', async (t) => {
  const env = setup(t);
  const img = await imp(env, 'one');
  env.store.add(img.id, { repoDigest: `one@${img.manifestDigest}` });
  env.store.tag(img.id, 'other');
  const res = await env.store.remove('one', { force: false, noprune: false }, none);
  assert.deepEqual(res, [{ Untagged: 'one:latest' }, { Untagged: `one@${img.manifestDigest}` }]);
  assert.deepEqual(env.store.get(img.id)!.repoTags, ['other:latest']);
});

test('rmi with containers: stopped needs force, running cannot be forced', async (t) => {
  const env = setup(t);
  const img = await imp(env, 'busybox');
  const short = img.id.slice(7, 19);
  const cid = 'c'.repeat(64);
  const stopped = (): ContainerUse[] => [{ id: cid, running: false }];
  const running = (): ContainerUse[] => [{ id: cid, running: true }];

  await assert.rejects(env.store.remove('busybox', { force: false, noprune: false }, stopped), (e: unknown) =>
    e instanceof Conflict && e.message === `conflict: unable to remove repository reference "busybox" (must force) - container ${cid.slice(0, 12)} is using its referenced image ${short}`);
  await assert.rejects(env.store.remove(short, { force: false, noprune: false }, stopped), (e: unknown) =>
    e instanceof Conflict && e.message === `conflict: unable to delete ${short} (must be forced) - image is being used by stopped container ${cid.slice(0, 12)}`);
  await assert.rejects(env.store.remove(short, { force: true, noprune: false }, running), (e: unknown) =>
    e instanceof Conflict && e.message === `conflict: unable to delete ${short} (cannot be forced) - image is being used by running container ${cid.slice(0, 12)}`);
  assert.deepEqual(env.store.get(img.id)!.repoTags, ['busybox:latest'], 'failed removals change nothing');

  // Forced by name while a container runs: the name goes, the image stays.
  assert.deepEqual(await env.store.remove('busybox', { force: true, noprune: false }, running), [{ Untagged: 'busybox:latest' }]);
  assert.ok(env.store.get(img.id));

  // Forced by name with a stopped container: untagged, the image stays dangling for the container.
  env.store.tag(img.id, 'busybox');
  assert.deepEqual(await env.store.remove('busybox', { force: true, noprune: false }, stopped), [{ Untagged: 'busybox:latest' }]);
  assert.ok(env.store.get(img.id));
  assert.ok(env.layers.stat(img.layers[0]!.chainId));

  // Once the container is gone the dangling image can be removed by ID.
  assert.deepEqual((await env.store.remove(short, { force: false, noprune: false }, none))[0], { Deleted: img.id });
});

test('rmi keeps going when storage still uses the layer (Conflict is ignored)', async (t) => {
  const env = setup(t);
  const img = await imp(env, 'x');
  env.layers.inUse.add(img.layers[0]!.chainId);
  assert.deepEqual(await env.store.remove('x', { force: false, noprune: false }, none), [{ Untagged: 'x:latest' }, { Deleted: img.id }]);
  assert.ok(env.layers.stat(img.layers[0]!.chainId));
});

test('rmi leaves what a lease holds; collect() takes it once the lease is released', { timeout: 30_000 }, async (t) => {
  const env = setup(t);
  const img = await imp(env, 'x');
  const chainId = img.layers[0]!.chainId;
  const layerBlob = JSON.parse((await env.content.read(img.manifestDigest!)).toString()).layers[0].digest as string;
  // Another operation (a pull of an image sharing the layer, say) relies on the layer and its blob.
  const lease = env.content.leases.create();
  lease.snapshot(chainId);
  lease.blob(layerBlob);
  assert.deepEqual(await env.store.remove('x', { force: false, noprune: false }, none), [{ Untagged: 'x:latest' }, { Deleted: img.id }]);
  assert.ok(env.layers.stat(chainId), 'a held layer stays');
  assert.ok(env.content.has(layerBlob), 'a held blob stays');
  assert.equal(env.content.has(img.id), false, 'what nothing holds goes');
  lease.release();
  assert.deepEqual(await env.store.collect({ layers: [chainId], blobs: [layerBlob] }), [chainId]);
  assert.equal(env.layers.stat(chainId), null);
  assert.equal(env.content.has(layerBlob), false);
});

test('parents: a child blocks deletion; removing the child prunes an unnamed parent unless noprune', async (t) => {
  const env = setup(t);
  const parent = await imp(env);
  const cfg = await env.content.put(JSON.stringify({ ...parent.config, config: { Cmd: ['child'] } }));
  env.store.add(cfg.digest, { tags: ['child'], parent: parent.id });
  const pshort = parent.id.slice(7, 19);
  await assert.rejects(env.store.remove(parent.id, { force: true, noprune: false }, none), (e: unknown) =>
    e instanceof Conflict && e.message === `conflict: unable to delete ${pshort} (cannot be forced) - image has dependent child images`);
  const res = await env.store.remove('child', { force: false, noprune: false }, none);
  assert.deepEqual(res.filter((r) => 'Deleted' in r).map((r) => (r as { Deleted: string }).Deleted).slice(0, 2), [cfg.digest, parent.id]);
  assert.equal(env.store.list().length, 0);

  const p2 = await imp(env);
  const cfg2 = await env.content.put(JSON.stringify({ ...p2.config, config: { Cmd: ['child2'] } }));
  env.store.add(cfg2.digest, { tags: ['child2'], parent: p2.id });
  await env.store.remove('child2', { force: false, noprune: true }, none);
  assert.deepEqual(env.store.list().map((i) => i.id), [p2.id]);
});

test('reopening the database gives back the same images and names', async (t) => {
  const env = setup(t);
  const a = await imp(env, 'a:1');
  const b = await imp(env, 'b');
  env.store.tag(a.id, 'localhost:5000/a:2');
  const before = env.store.list().sort((x, y) => x.id.localeCompare(y.id));
  env.db.close();
  env.db = new BetterSqlite3(env.dbPath);
  env.store = openImageStore(env.db, openContentStore(path.join(env.dir, 'content')), env.layers);
  assert.deepEqual(env.store.list().sort((x, y) => x.id.localeCompare(y.id)), before);
  assert.equal(env.store.resolve('b').id, b.id);
});

test('kill -9 in the middle of tag/untag/import/rmi leaves a consistent store', async (t) => {
  const env = setup(t);
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  const child = path.join(env.dir, 'child.mts');
  // The child uses a storage stand-in that survives restarts (a JSON file per layer), so we can check
  // that every recorded image still has its config, manifest and layers.
  fs.writeFileSync(child, `
    import * as fs from 'node:fs';
    import * as path from 'node:path';
    import { createHash } from 'node:crypto';
    import BetterSqlite3 from ${JSON.stringify(createRequire(import.meta.url).resolve('better-sqlite3'))};
    import { openContentStore } from ${JSON.stringify(path.join(root, 'src/content/index.ts'))};
    import { importImage, openImageStore } from ${JSON.stringify(path.join(root, 'src/image/index.ts'))};
    const dir = ${JSON.stringify(env.dir)};
    const ldir = path.join(dir, 'layers');
    fs.mkdirSync(ldir, { recursive: true });
    const layers = {
      stat: (id) => { try { return JSON.parse(fs.readFileSync(path.join(ldir, id), 'utf8')); } catch { return null; } },
      stageLayer: async (tar) => {
        const chunks = []; for await (const c of tar) chunks.push(c);
        const b = Buffer.concat(chunks);
        const d = 'sha256:' + createHash('sha256').update(b).digest('hex');
        return { diffId: d, size: b.length, discard: () => {}, commit: (parent) => {
          const info = { name: d, kind: 'committed', chainId: d, diffId: d, parent, size: b.length };
          fs.writeFileSync(path.join(ldir, d + '.tmp'), JSON.stringify(info)); fs.renameSync(path.join(ldir, d + '.tmp'), path.join(ldir, d));
          return info;
        } };
      },
      remove: async (id) => { fs.rmSync(path.join(ldir, id), { force: true }); },
    };
    const db = new BetterSqlite3(${JSON.stringify(env.dbPath)});
    const content = openContentStore(path.join(dir, 'content'));
    const store = openImageStore(db, content, layers);
    const tar = (s) => { const h = Buffer.alloc(1024); h.write(s); return h; };
    process.stdout.write('ready\\n');
    for (let i = 0; ; i++) {
      const img = await importImage(store, content, layers, (await import('node:stream')).Readable.from([tar('f' + (i % 7))]), { ref: 'img' + (i % 5), changes: ['CMD ["' + i + '"]'] });
      store.tag(img.id, 'extra' + (i % 3));
      if (i % 2) await store.remove('img' + ((i + 2) % 5), { force: true, noprune: false }, () => []).catch((e) => { if (e.name !== 'NotFound') throw e; });
      store.untag('extra' + ((i + 1) % 3));
    }
  `);
  await killMidway(t, child, root, { min: 700, spread: 300 });

  env.db.close();
  env.db = new BetterSqlite3(env.dbPath);
  const content = openContentStore(path.join(env.dir, 'content'));
  await content.recover();
  const ldir = path.join(env.dir, 'layers');
  const layers: LayerStore = {
    stat: (id) => (fs.existsSync(path.join(ldir, id)) ? JSON.parse(fs.readFileSync(path.join(ldir, id), 'utf8')) as LayerInfo : null),
    remove: () => Promise.resolve(),
  };
  const store = openImageStore(env.db, content, layers);
  const images = store.list();
  assert.ok(images.length > 0, 'the child got some work done');
  const rows = env.db.prepare('SELECT image_id FROM image_default_refs').all() as { image_id: string }[];
  const ids = new Set(images.map((i) => i.id));
  for (const r of rows) assert.ok(ids.has(r.image_id), `ref points at a recorded image ${r.image_id}`);
  for (const img of images) {
    assert.ok(content.has(img.id), 'config blob present');
    assert.ok(img.manifestDigest && content.has(img.manifestDigest), 'manifest blob present');
    for (const l of img.layers) assert.ok(layers.stat(l.chainId), 'layer present');
    assert.equal(store.resolve(img.id).id, img.id);
  }
  const count = (env.db.prepare('SELECT count(*) AS n FROM image_default_images').get() as { n: number }).n;
  assert.equal(count, images.length, 'every row loads');
});

test('each storage driver has its own images; removing one under a driver keeps the blobs another driver\'s image uses', async (t) => {
  const env = setup(t);
  const a = Object.assign(new FakeLayers(), { driver: 'a' });
  const b = Object.assign(new FakeLayers(), { driver: 'b' });
  const storeA = openImageStore(env.db, env.content, a);
  const tar = await makeTar({ 'bin/shared': 'same bytes' });
  const img = await importImage(storeA, env.content, a, Readable.from([tar]), { ref: 'shared:1' });
  const blobs = [img.id, img.manifestDigest!];

  const storeB = openImageStore(env.db, env.content, b);
  assert.deepEqual(storeB.list(), [], 'driver b sees none of a\'s images');
  assert.throws(() => storeB.resolve('shared:1'), NotFound);
  // The same image under b: its layer applied to b's storage, its config and manifest the shared blobs.
  (await b.stageLayer(Readable.from([tar]))).commit(null);
  storeB.add(img.id, { tags: ['shared:1'], manifestDigest: img.manifestDigest! });
  await storeB.remove('shared:1', { force: false, noprune: false }, none);
  assert.deepEqual(storeB.list(), []);
  assert.equal(b.layers.size, 0, 'b\'s layer is collected');
  for (const d of blobs) assert.ok(env.content.has(d), `blob ${d} that a's image uses is kept`);

  const again = openImageStore(env.db, env.content, a);
  assert.equal(again.resolve('shared:1').id, img.id);
  await again.remove('shared:1', { force: false, noprune: false }, none);
  for (const d of blobs) assert.ok(!env.content.has(d), `blob ${d} goes with the last image using it`);
});
