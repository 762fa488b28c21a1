import { Transform, type TransformCallback } from 'node:stream';

/*
 * PAX records with binary values. tar-stream decodes PAX values as UTF-8 (and
 * encodes them so), which mangles binary xattrs such as security.capability.
 * So we read and write the records ourselves: PaxTap follows the tar framing
 * of the bytes on their way to the parser and keeps each member's raw records;
 * encodePax builds a record block to emit as a 'pax-header' entry.
 */

export type PaxRecords = Map<string, Buffer>;

const BLOCK = 512;

function parseRecords(buf: Buffer, into: PaxRecords): void {
  let pos = 0;
  while (pos < buf.length) {
    const space = buf.indexOf(0x20, pos);
    if (space < 0) return;
    const len = parseInt(buf.toString('ascii', pos, space), 10);
    if (!(len > 0) || pos + len > buf.length) return;
    const rec = buf.subarray(space + 1, pos + len - 1); // drop trailing "\n"
    const eq = rec.indexOf(0x3d);
    if (eq > 0) into.set(rec.toString('utf8', 0, eq), Buffer.from(rec.subarray(eq + 1)));
    pos += len;
  }
}

function headerSize(h: Buffer): number {
  if (h[124] & 0x80) {
    // base-256 (GNU) for sizes past 8 GiB
    let n = 0;
    for (let i = 125; i < 136; i++) n = n * 256 + h[i];
    return n;
  }
  const s = h.toString('ascii', 124, 136).replace(/\0.*$/, '').trim();
  return s ? parseInt(s, 8) : 0;
}

/** Passes a tar through unchanged, remembering the raw PAX records of each member (in order). */
export class PaxTap extends Transform {
  private readonly queue: PaxRecords[] = [];
  private global: PaxRecords = new Map();
  private pending: PaxRecords | null = null;
  private head = Buffer.alloc(0);
  /** Payload bytes (incl. padding) still to skip, and whether to capture them. */
  private skip = 0;
  private capture: { kind: 'x' | 'g'; size: number; parts: Buffer[] } | null = null;

  /** Raw PAX records of the next member tar-stream hands out. */
  next(): PaxRecords {
    return this.queue.shift() ?? new Map();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - pos);
        if (this.capture) this.capture.parts.push(chunk.subarray(pos, pos + n));
        this.skip -= n;
        pos += n;
        if (this.skip === 0 && this.capture) this.finishCapture();
        continue;
      }
      const need = BLOCK - this.head.length;
      const n = Math.min(need, chunk.length - pos);
      this.head = Buffer.concat([this.head, chunk.subarray(pos, pos + n)]);
      pos += n;
      if (this.head.length === BLOCK) {
        this.onHeader(this.head);
        this.head = Buffer.alloc(0);
      }
    }
    cb(null, chunk);
  }

  private onHeader(h: Buffer): void {
    if (h.every((b) => b === 0)) return;
    const type = String.fromCharCode(h[156]);
    let size = headerSize(h);
    if (type === 'x' || type === 'g') {
      this.capture = { kind: type, size, parts: [] };
    } else if (type !== 'L' && type !== 'K') {
      const own = this.pending ?? new Map<string, Buffer>();
      const override = own.get('size');
      if (override) size = parseInt(override.toString('ascii'), 10);
      this.queue.push(new Map([...this.global, ...own]));
      this.pending = null;
    }
    this.skip = Math.ceil(size / BLOCK) * BLOCK;
    if (this.skip === 0 && this.capture) this.finishCapture();
  }

  private finishCapture(): void {
    const cap = this.capture as { kind: 'x' | 'g'; size: number; parts: Buffer[] };
    this.capture = null;
    const payload = Buffer.concat(cap.parts).subarray(0, cap.size);
    if (cap.kind === 'g') parseRecords(payload, this.global);
    else parseRecords(payload, (this.pending = new Map()));
  }
}

/** A PAX extended-header payload from records (binary values kept as-is). */
export function encodePax(records: Iterable<[string, Buffer]>): Buffer {
  const out: Buffer[] = [];
  for (const [key, value] of records) {
    const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
    // The length prefix counts itself: find the digit count that fits.
    let digits = String(body.length).length;
    if (String(body.length + digits).length > digits) digits++;
    out.push(Buffer.from(String(body.length + digits)), body);
  }
  return Buffer.concat(out);
}
