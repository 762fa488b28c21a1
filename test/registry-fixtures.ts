/**
 * Registry fixtures for unit and e2e tests, all on loopback:
 *
 *   startDistribution({htpasswd?})  → Debian's docker-registry (distribution 2.8) with a temp config and
 *                                     filesystem storage; stop() kills it and removes its dirs.
 *   pushBusybox(host, "repo:tag")   → an OCI layout (busybox rootfs + a small second layer, gzip or zstd)
 *                                     copied into the registry with skopeo; returns its digests.
 *   pushMultiArch(host, "repo:tag") → an OCI index with linux/amd64 and linux/arm64 images (skopeo --all).
 *   blobFile(reg, digest)           → where distribution keeps a blob (to tamper with it in tests).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import bcrypt from 'bcryptjs';
import tarStream from 'tar-stream';
import { paths, run, testImages } from './harness.js';

export interface Distribution {
  /** http://127.0.0.1:PORT */
  url: string;
  /** 127.0.0.1:PORT (what goes in an image reference) */
  host: string;
  /** Storage root (filesystem driver). */
  root: string;
  stop(): Promise<void>;
}

export interface PushedLayer { digest: string; size: number; diffId: string; mediaType: string }
export interface PushedImage { ref: string; manifestDigest: string; manifestSize: number; configDigest: string; layers: PushedLayer[] }

const sha = (b: Buffer | string): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

async function waitHttp(url: string, proc: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`registry exited (${proc.exitCode}):\n${log()}`);
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`registry did not answer on ${url}:\n${log()}`);
}

/** Runs a registry process on 127.0.0.1:port, logging to dir; stop() ends it and removes dir. */
async function serve(dir: string, root: string, port: number, cmd: string, args: string[], stopSignal: NodeJS.Signals): Promise<Distribution> {
  const logFile = path.join(dir, 'registry.log');
  const out = fs.openSync(logFile, 'a');
  const proc = spawn(cmd, args, { stdio: ['ignore', out, out] });
  fs.closeSync(out);
  const readLog = (): string => { try { return fs.readFileSync(logFile, 'utf8').slice(-4000); } catch { return ''; } };
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const gone = new Promise<void>((r) => proc.once('exit', () => r()));
      proc.kill(stopSignal);
      await gone;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitHttp(`http://127.0.0.1:${port}/v2/`, proc, readLog);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: `http://127.0.0.1:${port}`, host: `127.0.0.1:${port}`, root, stop };
}

export async function startDistribution(opts: { htpasswd?: { user: string; password: string } } = {}): Promise<Distribution> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-reg-'));
  const root = path.join(dir, 'storage');
  fs.mkdirSync(root);
  const port = await freePort();
  const lines = [
    'version: 0.1',
    'log:', '  level: error', '  accesslog:', '    disabled: true',
    'storage:', `  filesystem:`, `    rootdirectory: ${root}`, '  delete:', '    enabled: true',
    'http:', `  addr: 127.0.0.1:${port}`, `  secret: ${createHash('sha256').update(dir).digest('hex')}`,
  ];
  if (opts.htpasswd) {
    const file = path.join(dir, 'htpasswd');
    fs.writeFileSync(file, `${opts.htpasswd.user}:${bcrypt.hashSync(opts.htpasswd.password, 5)}\n`);
    lines.push('auth:', '  htpasswd:', '    realm: basic-realm', `    path: ${file}`);
  }
  const cfg = path.join(dir, 'config.yml');
  fs.writeFileSync(cfg, lines.join('\n') + '\n');
  return serve(dir, root, port, '/usr/bin/docker-registry', ['serve', cfg], 'SIGKILL');
}

/** `berth registry serve` on a free loopback port with a temp root (and an htpasswd file when asked). */
export async function startBerthRegistry(opts: { htpasswd?: { user: string; password: string } } = {}): Promise<Distribution> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-breg-'));
  const root = path.join(dir, 'root');
  const port = await freePort();
  const args = ['registry', 'serve', '--root', root, '--addr', `127.0.0.1:${port}`];
  if (opts.htpasswd) {
    const file = path.join(dir, 'htpasswd');
    fs.writeFileSync(file, `${opts.htpasswd.user}:${bcrypt.hashSync(opts.htpasswd.password, 5)}\n`);
    args.push('--htpasswd', file);
  }
  return serve(dir, root, port, paths.berth, args, 'SIGTERM');
}

/** Where distribution's filesystem driver keeps a blob's bytes. */
export function blobFile(reg: Pick<Distribution, 'root'>, digest: string): string {
  const hex = digest.replace(/^sha256:/, '');
  return path.join(reg.root, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
}

async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const pack = tarStream.pack();
  for (const [name, body] of Object.entries(files)) pack.entry({ name, mode: 0o644, mtime: new Date(0), uid: 0, gid: 0 }, body);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function zstdOf(data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const p = spawn('zstd', ['-q', '-c', '-3'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    p.stdout.on('data', (c: Buffer) => chunks.push(c));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve(Buffer.concat(chunks)) : reject(new Error(`zstd exited ${code}`))));
    p.stdin.end(data);
  });
}

interface LayoutImage { platform: { os: string; architecture: string; variant?: string }; layers: Buffer[]; compression: 'gzip' | 'zstd'; cmd: string[] }
interface BuiltImage { manifest: Buffer; manifestDigest: string; configDigest: string; layers: PushedLayer[]; platform: LayoutImage['platform'] }

/**
 * OCI image layouts, written by hand: `initLayout` makes the skeleton, `layoutBlob` stores a blob,
 * `writeManifest` adds a config and a manifest over layer blobs already stored, `writeIndex` names it.
 */
export function initLayout(dir: string): void {
  fs.mkdirSync(path.join(dir, 'blobs/sha256'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
}

export function layoutBlob(dir: string, data: Buffer): string {
  const d = sha(data);
  fs.writeFileSync(path.join(dir, 'blobs/sha256', d.slice(7)), data);
  return d;
}

/** Config (`config` fields over linux/amd64 and the layers' diff IDs) and manifest for `layers`; returns the manifest. */
export function writeManifest(dir: string, layers: PushedLayer[], config: object = {}): { manifest: Buffer; manifestDigest: string; configDigest: string } {
  const configBlob = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, ...config, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) } }));
  const configDigest = layoutBlob(dir, configBlob);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: configBlob.length },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  }));
  return { manifest, manifestDigest: layoutBlob(dir, manifest), configDigest };
}

export function writeIndex(dir: string, tag: string, desc: { mediaType: string; digest: string; size: number }): void {
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ ...desc, annotations: { 'org.opencontainers.image.ref.name': tag } }],
  }));
}

async function buildImage(dir: string, img: LayoutImage): Promise<BuiltImage> {
  const layers: PushedLayer[] = [];
  for (const tar of img.layers) {
    const blob = img.compression === 'zstd' ? await zstdOf(tar) : gzipSync(tar);
    const mediaType = `application/vnd.oci.image.layer.v1.tar+${img.compression}`;
    layers.push({ digest: layoutBlob(dir, blob), size: blob.length, diffId: sha(tar), mediaType });
  }
  const built = writeManifest(dir, layers, {
    created: '2026-01-01T00:00:00Z',
    ...img.platform,
    config: { Cmd: img.cmd, Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] },
    history: layers.map((_, i) => ({ created: '2026-01-01T00:00:00Z', created_by: `layer ${i}` })),
  });
  return { ...built, layers, platform: img.platform };
}

async function newLayout(): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-oci-'));
  initLayout(dir);
  return dir;
}

async function skopeoCopy(dir: string, tag: string, dest: string, opts: { all?: boolean; creds?: string }): Promise<void> {
  const args = ['--insecure-policy', 'copy', '--dest-tls-verify=false', '--preserve-digests'];
  if (opts.all) args.push('--all');
  if (opts.creds) args.push('--dest-creds', opts.creds);
  args.push(`oci:${dir}:${tag}`, `docker://${dest}`);
  const r = await run('skopeo', args, { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`skopeo copy to ${dest} failed (${r.code}):\n${r.stderr}`);
}

function split(repoTag: string): { repo: string; tag: string } {
  const i = repoTag.lastIndexOf(':');
  return i > 0 && !repoTag.slice(i).includes('/') ? { repo: repoTag.slice(0, i), tag: repoTag.slice(i + 1) } : { repo: repoTag, tag: 'latest' };
}

async function busyboxTar(): Promise<Buffer> {
  const bb = (await testImages()).find((i) => i.ref.startsWith('busybox'))!;
  return fs.readFileSync(bb.tar);
}

/**
 * Pushes a 2-layer busybox image (rootfs + /etc/berth-hello) to host/repo:tag. `extra` changes the
 * second layer (so tests can make distinct images sharing the base layer); `randomBytes` makes it big.
 */
export async function pushBusybox(host: string, repoTag: string,
  opts: { compression?: 'gzip' | 'zstd'; creds?: string; extra?: string; randomBytes?: number } = {}): Promise<PushedImage> {
  const { repo, tag } = split(repoTag);
  const dir = await newLayout();
  try {
    const files: Record<string, string> = { 'etc/berth-hello': `${opts.extra ?? 'hello from the registry'}\n` };
    // Incompressible filler makes the second layer big and unique (e.g. to interrupt its download).
    if (opts.randomBytes) files['var/random'] = randomBytes(Math.ceil(opts.randomBytes / 2)).toString('hex');
    const hello = await tarOf(files);
    const img = await buildImage(dir, {
      platform: { os: 'linux', architecture: 'amd64' }, layers: [await busyboxTar(), hello], compression: opts.compression ?? 'gzip', cmd: ['sh'],
    });
    writeIndex(dir, tag, { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: img.manifestDigest, size: img.manifest.length });
    await skopeoCopy(dir, tag, `${host}/${repo}:${tag}`, { creds: opts.creds });
    return { ref: `${host}/${repo}:${tag}`, manifestDigest: img.manifestDigest, manifestSize: img.manifest.length, configDigest: img.configDigest, layers: img.layers };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** An OCI index with linux/amd64 (busybox) and linux/arm64 (a one-file layer; never run) under host/repo:tag. */
export async function pushMultiArch(host: string, repoTag: string): Promise<{ indexDigest: string; images: Record<string, PushedImage> }> {
  const { repo, tag } = split(repoTag);
  const dir = await newLayout();
  try {
    const amd64 = await buildImage(dir, {
      platform: { os: 'linux', architecture: 'amd64' }, layers: [await busyboxTar(), await tarOf({ 'etc/arch': 'amd64\n' })], compression: 'gzip', cmd: ['sh'],
    });
    const arm64 = await buildImage(dir, {
      platform: { os: 'linux', architecture: 'arm64', variant: 'v8' }, layers: [await tarOf({ 'etc/arch': 'arm64\n' })], compression: 'gzip', cmd: ['sh'],
    });
    const index = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [amd64, arm64].map((m) => ({
        mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: m.manifestDigest, size: m.manifest.length, platform: m.platform,
      })),
    }));
    const indexDigest = layoutBlob(dir, index);
    writeIndex(dir, tag, { mediaType: 'application/vnd.oci.image.index.v1+json', digest: indexDigest, size: index.length });
    await skopeoCopy(dir, tag, `${host}/${repo}:${tag}`, { all: true });
    const as = (m: BuiltImage): PushedImage => ({
      ref: `${host}/${repo}@${m.manifestDigest}`, manifestDigest: m.manifestDigest, manifestSize: m.manifest.length, configDigest: m.configDigest, layers: m.layers,
    });
    return { indexDigest, images: { 'linux/amd64': as(amd64), 'linux/arm64': as(arm64) } };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** PUT a manifest by hand (e.g. one naming a missing blob or an unknown layer media type). Blobs must exist unless the registry skips the check. */
export async function putManifest(reg: Pick<Distribution, 'url'>, repo: string, ref: string, manifest: object, mediaType = 'application/vnd.oci.image.manifest.v1+json'): Promise<string> {
  const body = Buffer.from(JSON.stringify(manifest));
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${ref}`, { method: 'PUT', headers: { 'Content-Type': mediaType }, body });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`PUT manifest ${repo}:${ref}: ${res.status} ${text}`);
  return sha(body);
}

/** Uploads a blob monolithically; returns its digest. */
export async function putBlob(reg: Pick<Distribution, 'url'>, repo: string, data: Buffer): Promise<string> {
  const d = sha(data);
  const start = await fetch(`${reg.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  await start.arrayBuffer();
  const loc = new URL(start.headers.get('location')!, reg.url);
  loc.searchParams.set('digest', d);
  const res = await fetch(loc, { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream' }, body: new Uint8Array(data) });
  await res.arrayBuffer();
  if (res.status !== 201) throw new Error(`PUT blob: ${res.status}`);
  return d;
}

/** `skopeo inspect` of an image in the registry (raw manifest and config). */
export async function skopeoInspect(ref: string, creds?: string): Promise<{ raw: string; config: { rootfs?: { diff_ids?: string[] }; config?: { Cmd?: string[] } } }> {
  const base = ['--insecure-policy', 'inspect', '--tls-verify=false'];
  if (creds) base.push('--creds', creds);
  const raw = await run('skopeo', [...base, '--raw', `docker://${ref}`], { timeoutMs: 60_000 });
  if (raw.code !== 0) throw new Error(`skopeo inspect --raw ${ref} failed: ${raw.stderr}`);
  const cfg = await run('skopeo', [...base, '--config', `docker://${ref}`], { timeoutMs: 60_000 });
  if (cfg.code !== 0) throw new Error(`skopeo inspect --config ${ref} failed: ${cfg.stderr}`);
  return { raw: raw.stdout, config: JSON.parse(cfg.stdout) as { rootfs?: { diff_ids?: string[] } } };
}
