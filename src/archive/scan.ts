/**
 * A first pass over a tar from outside (PUT archive, load): every member name and hard link target
 * must stay below the tar's root. Checking before anything is written is what lets a hostile tar
 * change nothing at all, where refusing it mid-extraction would leave its first members behind.
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { InvalidParameter } from '../errors.js';
import { decompressed } from './apply.js';
import { climbsOut } from './safejoin.js';

/** Reads the whole tar (plain or gzip); InvalidParameter naming the first member that points outside, or a broken tar. */
export async function checkTarMembers(input: Readable): Promise<{ members: number }> {
  const extract = tar.extract();
  let members = 0;
  extract.on('entry', (h, stream, next) => {
    members++;
    // A broken tar errors the member being read too; the pipeline below reports it once.
    stream.on('error', () => {});
    stream.resume();
    if (climbsOut(h.name)) return next(new InvalidParameter(`invalid tar member "${h.name}": it points outside of the destination`));
    if (h.type === 'link' && climbsOut(h.linkname ?? '')) return next(new InvalidParameter(`invalid hard link "${h.name}" -> "${h.linkname}": it points outside of the destination`));
    next();
  });
  try {
    await pipeline([...(await decompressed(input)), extract as unknown as NodeJS.WritableStream]);
  } catch (err) {
    if (err instanceof InvalidParameter) throw err;
    throw new InvalidParameter(`invalid tar archive: ${(err as Error).message}`);
  }
  return { members };
}
