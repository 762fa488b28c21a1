/**
 * The multi-stage build of a real program: a C program compiled by gcc in a Debian stage (a rootfs
 * made by mmdebstrap, imported as an image), the static binary copied into a busybox stage. The
 * result runs and stays small. The Debian tarball is cached between runs (it takes minutes to make).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run, startDaemon, loadTestImages, printLogTail, type Daemon } from '../harness.js';

const CACHE = '/tmp/berth-build-cache';
const DEBIAN_TAR = path.join(CACHE, 'debian-gcc-bookworm.tar');
const haveMmdebstrap = fs.existsSync('/usr/bin/mmdebstrap');
let d: Daemon;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-build-ms-'));

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
});

after(async () => {
  await d?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A Debian bookworm rootfs with gcc and libc6-dev, as a tar (mmdebstrap writes a tar for a .tar name). */
async function debianTar(): Promise<string> {
  if (fs.existsSync(DEBIAN_TAR)) return DEBIAN_TAR;
  fs.mkdirSync(CACHE, { recursive: true });
  const part = path.join(CACHE, `debian-gcc-${process.pid}.tar`);
  const r = await run('mmdebstrap', ['--quiet', '--variant=minbase', '--include=gcc,libc6-dev', 'bookworm', part], { timeoutMs: 900_000 });
  if (r.code !== 0) throw new Error(`mmdebstrap failed (${r.code}): ${r.stderr.slice(-2000)}`);
  fs.renameSync(part, DEBIAN_TAR);
  return DEBIAN_TAR;
}

test('multi-stage: gcc in a Debian stage, the binary in a busybox stage: a working small image', {
  timeout: 1_200_000,
  skip: haveMmdebstrap ? false : 'needs mmdebstrap (Debian package) to make the Debian build stage',
}, async () => {
  const tar = await debianTar();
  const imp = await d.docker(['import', tar, 'debian-gcc:bookworm'], { timeoutMs: 300_000 });
  assert.equal(imp.code, 0, imp.stderr);
  const ctx = fs.mkdtempSync(path.join(tmp, 'ctx-'));
  fs.writeFileSync(path.join(ctx, 'hello.c'), '#include <stdio.h>\nint main(int argc, char **argv) { printf("hello from C, %d args\\n", argc - 1); return 0; }\n');
  fs.writeFileSync(path.join(ctx, 'Dockerfile'), [
    'FROM debian-gcc:bookworm AS build',
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'WORKDIR /src',
    'COPY hello.c .',
    'RUN gcc -static -O2 -o /hello hello.c',
    'FROM busybox',
    'COPY --from=build /hello /usr/local/bin/hello',
    'ENTRYPOINT ["/usr/local/bin/hello"]',
  ].join('\n') + '\n');
  const r = await d.docker(['build', '-t', 'hello-c', ctx], { env: { DOCKER_BUILDKIT: '0' }, timeoutMs: 600_000 });
  if (r.code !== 0) printLogTail(d);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const out = await d.docker(['run', '--rm', 'hello-c', 'a', 'b']);
  assert.equal(out.stdout, 'hello from C, 2 args\n');
  const size = (id: string) => d.docker(['image', 'inspect', '-f', '{{.Size}}', id]).then((x) => Number(x.stdout.trim()));
  const [final, busybox, debian] = await Promise.all([size('hello-c'), size('busybox'), size('debian-gcc:bookworm')]);
  // The compiler stage stays behind: the image is busybox plus one static binary (well under 2 MB).
  assert.ok(final - busybox < 2_000_000, `final ${final} vs busybox ${busybox}`);
  assert.ok(debian > 100_000_000, `the Debian stage is big (${debian}), and none of it is in the image`);
});
