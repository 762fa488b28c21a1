/**
 * Garbage collection of a registry root (run it while the server is stopped or
 * read-only, as with distribution: an upload that has not got its manifest yet
 * looks like garbage).
 *
 * Mark: every manifest stored in any repository (tagged or not) is live, and so is
 * every blob it names. Sweep, in an order that is safe to interrupt at any point and
 * simply run again: first the per-repository blob links that no manifest of that
 * repository names (left by deleted manifests), then the blob files nobody marked,
 * then stray temp files. Nothing live is touched in any step, so a crash mid-way
 * leaves a store that serves correctly and whose next gc finishes the job.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { Layout } from './storage.js';
import { parseManifest, validDigest } from './spec.js';

export interface GcReport {
  /** Manifests kept, over all repositories. */
  manifests: number;
  /** Blobs kept (manifests included). */
  kept: number;
  deleted: Array<{ digest: string; size: number }>;
  bytesFreed: number;
  linksRemoved: Array<{ repository: string; digest: string }>;
  dryRun: boolean;
}

export async function collectGarbage(root: string, opts: { dryRun?: boolean } = {}): Promise<GcReport> {
  const layout = new Layout(root);
  const dryRun = opts.dryRun ?? false;
  const marked = new Set<string>();
  const perRepo = new Map<string, Set<string>>();
  let manifests = 0;

  for (const repo of await layout.repositories()) {
    const used = new Set<string>();
    perRepo.set(repo, used);
    for (const digest of await layout.digestsUnder(layout.revisionsDir(repo))) {
      let body: Buffer;
      let mediaType: string;
      try {
        mediaType = (JSON.parse(await fs.readFile(layout.revision(repo, digest), 'utf8')) as { mediaType: string }).mediaType;
        body = await fs.readFile(layout.blob(digest));
      } catch {
        continue;
      }
      manifests++;
      marked.add(digest);
      try {
        const m = parseManifest(body, mediaType);
        for (const d of [m.config, ...(m.layers ?? [])]) {
          if (!d) continue;
          marked.add(d.digest);
          used.add(d.digest);
        }
      } catch {}
    }
  }

  const linksRemoved: GcReport['linksRemoved'] = [];
  for (const [repo, used] of perRepo) {
    for (const digest of await layout.digestsUnder(layout.layersDir(repo))) {
      if (used.has(digest)) continue;
      linksRemoved.push({ repository: repo, digest });
      if (!dryRun) await fs.rm(layout.layerLink(repo, digest), { force: true });
    }
  }

  const deleted: GcReport['deleted'] = [];
  let kept = 0;
  const blobsDir = layout.blobsDir();
  for (const alg of await fs.readdir(blobsDir).catch(() => [] as string[])) {
    for (const prefix of await fs.readdir(path.join(blobsDir, alg)).catch(() => [] as string[])) {
      const dir = path.join(blobsDir, alg, prefix);
      for (const f of await fs.readdir(dir).catch(() => [] as string[])) {
        const file = path.join(dir, f);
        const digest = `${alg}:${f}`;
        if (f.startsWith('.tmp-')) {
          if (!dryRun) await fs.rm(file, { force: true });
          continue;
        }
        if (!validDigest(digest) || marked.has(digest)) {
          kept++;
          continue;
        }
        const size = (await fs.stat(file).catch(() => ({ size: 0 }))).size;
        deleted.push({ digest, size });
        if (!dryRun) await fs.rm(file, { force: true });
      }
      if (!dryRun) await fs.rmdir(dir).catch(() => {});
    }
  }

  // Monolithic uploads that a crash interrupted leave a private temp dir behind.
  if (!dryRun) {
    for (const f of await fs.readdir(layout.uploadsDir()).catch(() => [] as string[])) {
      if (f.startsWith('.mono-')) await fs.rm(path.join(layout.uploadsDir(), f), { recursive: true, force: true });
    }
  }

  return { manifests, kept, deleted, bytesFreed: deleted.reduce((n, d) => n + d.size, 0), linksRemoved, dryRun };
}
