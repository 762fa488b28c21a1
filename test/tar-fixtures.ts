/** Layer tars built in memory for tests (small), with a fixed mtime so equal entries give equal bytes. */
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
