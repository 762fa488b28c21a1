/**
 * A client of conmon's attach socket (SOCK_SEQPACKET). Each packet conmon
 * sends starts with one byte naming the pipe (2 stdout, 3 stderr) followed by
 * the bytes the container wrote; what we send is raw stdin. Closing our write
 * side makes conmon close the container's stdin (it runs without
 * --leave-stdin-open), which is how `echo x | docker run -i` ends.
 */
import fs from 'node:fs';
import { PassThrough, Writable, type Readable } from 'node:stream';
import { seqpacketConnect, shutdown, SHUT_RDWR, SHUT_WR } from '../sys/index.js';
import { SystemError, errorMessage } from '../errors.js';

const STDOUT_PIPE = 2;
const STDERR_PIPE = 3;
/** conmon writes at most its stdio buffer (8 KiB) + 1 tag byte per packet; a larger buffer never truncates. */
const PACKET_MAX = 65536;
/** conmon reads stdin packets into a 32 KiB buffer and silently drops the rest, so we send smaller ones. */
const STDIN_PACKET = 16384;

export interface AttachStreams { stdin: Writable; stdout: Readable; stderr: Readable; close(): void }

export function attachSocket(socketPath: string): AttachStreams {
  let fd: number;
  try {
    fd = seqpacketConnect(socketPath);
  } catch (err) {
    throw new SystemError(`attach to ${socketPath}: ${errorMessage(err)}`);
  }
  let closed = false;
  let reading = false;
  let writeShut = false;
  const stdout = new PassThrough();
  const stderr = new PassThrough();

  const finish = () => {
    stdout.end();
    stderr.end();
    if (!closed) {
      closed = true;
      fs.close(fd, () => undefined);
    }
  };

  const close = () => {
    if (closed) return;
    // shutdown wakes the read parked in the threadpool (it returns 0), which then closes the fd.
    try { shutdown(fd, SHUT_RDWR); } catch { /* already gone */ }
    if (!reading) finish();
  };

  const readLoop = () => {
    if (closed) return;
    reading = true;
    const buf = Buffer.allocUnsafe(PACKET_MAX);
    fs.read(fd, buf, 0, buf.length, null, (err, n) => {
      reading = false;
      if (err || n === 0 || closed) return finish();
      const tag = buf[0];
      const data = Buffer.from(buf.subarray(1, n));
      if (tag === STDERR_PIPE) stderr.write(data);
      else if (tag === STDOUT_PIPE) stdout.write(data);
      readLoop();
    });
  };
  readLoop();

  const stdin = new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (closed) return cb(new Error('attach socket closed'));
      const writeAll = (off: number) => {
        fs.write(fd, chunk, off, Math.min(STDIN_PACKET, chunk.length - off), null, (err, n) => {
          if (err) return cb(err);
          if (off + n < chunk.length) writeAll(off + n);
          else cb();
        });
      };
      writeAll(0);
    },
    final(cb) {
      if (!closed && !writeShut) {
        writeShut = true;
        try { shutdown(fd, SHUT_WR); } catch { /* peer gone */ }
      }
      cb();
    },
  });

  return { stdin, stdout, stderr, close };
}
