/** Layer tars built in memory for tests (small), with a fixed mtime so equal entries give equal bytes. */
import fs from 'node:fs';
import tar from 'tar-stream';

export type Entry = Partial<tar.Header> & { name: string; pax?: Record<string, string>; body?: string };

export async function makeTar(entries: Entry[], defaults: Partial<tar.Header> = {}): Promise<Buffer> {
  const p = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of p) chunks.push(Buffer.from(c as Uint8Array));
  })();
  for (const { body, ...h } of entries) {
    await new Promise<void>((resolve, reject) =>
      p.entry({ mtime: new Date(1_600_000_000_000), ...defaults, ...h }, body ?? '', (err) => (err ? reject(err) : resolve())),
    );
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** Writes `out`: every entry of the tar `src` (a rootfs, say) followed by `entries`. */
export async function extendTar(src: string, out: string, entries: Entry[]): Promise<void> {
  const pack = tar.pack();
  const written = fs.createWriteStream(out);
  pack.pipe(written);
  const extract = tar.extract();
  const copied = new Promise<void>((resolve, reject) => {
    extract.on('entry', (h, stream, next) => stream.pipe(pack.entry(h, next)));
    extract.on('finish', resolve);
    extract.on('error', reject);
  });
  fs.createReadStream(src).pipe(extract);
  await copied;
  for (const { body, ...h } of entries) {
    await new Promise<void>((resolve, reject) => pack.entry({ mtime: new Date(1_600_000_000_000), ...h }, body ?? '', (e) => (e ? reject(e) : resolve())));
  }
  pack.finalize();
  await new Promise<void>((resolve, reject) => written.on('close', resolve).on('error', reject));
}
