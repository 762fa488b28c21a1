/**
 * The build cache: which image a step produced, keyed by what determines it — the parent image,
 * the step as docker records it in history (for COPY/ADD that names the sources' content digest),
 * and the build args a RUN sees. One small file per key under <data-root>/build/cache, written
 * atomically, so it survives a daemon restart and a kill -9. A hit whose image is gone is a miss.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../util/fs.js';

export class BuildCache {
  constructor(private readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  static key(parts: readonly string[]): string {
    return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
  }

  get(key: string): string | null {
    try {
      const id = fs.readFileSync(path.join(this.dir, key), 'utf8').trim();
      return /^sha256:[a-f0-9]{64}$/.test(id) ? id : null;
    } catch {
      return null;
    }
  }

  set(key: string, imageId: string): void {
    writeFileAtomic(path.join(this.dir, key), imageId, 0o600);
  }

  /** Forget the entries last written before `until` (ms); returns them (key and image ID). */
  prune(until = Infinity): { key: string; imageId: string | null }[] {
    const removed: { key: string; imageId: string | null }[] = [];
    for (const key of fs.readdirSync(this.dir)) {
      if (!/^[a-f0-9]{64}$/.test(key)) continue;
      const file = path.join(this.dir, key);
      try {
        if (fs.statSync(file).mtimeMs >= until) continue;
        const imageId = this.get(key);
        fs.rmSync(file, { force: true });
        removed.push({ key, imageId });
      } catch {}
    }
    return removed;
  }
}
