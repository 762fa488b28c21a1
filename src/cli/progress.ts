/**
 * Renders the daemon's JSON-lines progress stream (pull, push, import) the way
 * docker's jsonmessage does: on a terminal, one line per layer id updated in
 * place; otherwise plain status lines with progress bars dropped. An `error`
 * message ends the stream with that error.
 */
import type { Readable, Writable } from 'node:stream';

export interface JsonMessage {
  status?: string;
  id?: string;
  from?: string;
  progress?: string;
  progressDetail?: { current?: number; total?: number };
  stream?: string;
  error?: string;
  errorDetail?: { code?: number; message?: string };
  aux?: unknown;
}

export class StreamError extends Error {}

async function* messages(r: Readable): AsyncGenerator<JsonMessage> {
  let buf = '';
  for await (const chunk of r) {
    buf += chunk.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) yield JSON.parse(line) as JsonMessage;
    }
  }
  if (buf.trim()) yield JSON.parse(buf) as JsonMessage;
}

/** Displays the stream; returns every message so callers can pick aux/status values. */
export async function displayJsonMessages(r: Readable, out: Writable & { isTTY?: boolean }, quiet = false): Promise<JsonMessage[]> {
  const tty = !!out.isTTY && !quiet;
  const ids = new Map<string, number>();
  const all: JsonMessage[] = [];
  for await (const jm of messages(r)) {
    all.push(jm);
    if (jm.error || jm.errorDetail) throw new StreamError(jm.errorDetail?.message ?? jm.error ?? 'unknown error');
    if (jm.aux !== undefined || quiet) continue;
    const hasProgress = !!jm.progress || !!jm.progressDetail?.current || !!jm.progressDetail?.total;
    let up = 0;
    if (jm.id && jm.progressDetail) {
      let line = ids.get(jm.id);
      if (line === undefined) {
        line = ids.size;
        ids.set(jm.id, line);
        if (tty) out.write('\n');
      }
      up = ids.size - line;
      if (tty) out.write(`\x1b[${up}A`);
    } else ids.clear();
    let endl = '';
    if (tty && !jm.stream && jm.progressDetail) {
      out.write('\x1b[2K\r');
      endl = '\r';
    } else if (hasProgress && !tty) {
      continue;
    }
    let s = '';
    if (jm.id) s += `${jm.id}: `;
    if (jm.from) s += `(from ${jm.from}) `;
    if (tty && jm.progressDetail) s += `${jm.status ?? ''} ${jm.progress ?? ''}${endl}`;
    else if (jm.stream) s += jm.stream;
    else s += `${jm.status ?? ''}${endl}\n`;
    out.write(s);
    if (tty && up > 0) out.write(`\x1b[${up}B`);
  }
  return all;
}
