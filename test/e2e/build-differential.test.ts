/**
 * Differential build test: a set of Dockerfiles written for this repo (every instruction and the
 * expansion rules) built by berthd and, when Debian's docker.io is installed, by dockerd through
 * the same docker CLI (classic builder). The image configs (Cmd, Entrypoint, Env, WorkingDir, User,
 * Labels, ExposedPorts, Volumes, Healthcheck, StopSignal, Shell, OnBuild) and the file trees the
 * builds wrote (paths, modes, owners, contents) must be identical. Without dockerd the comparison
 * cannot run and says so; berthd's side is then still checked to be deterministic (two --no-cache
 * builds give the same config and tree).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startDaemon, loadTestImages, printLogTail, type Daemon, type RunResult } from '../harness.js';
import { loadBusybox, startDockerd, which, type Engine } from '../../bench/common.js';

// The classic builder in both engines (the machine has no buildx).
process.env.DOCKER_BUILDKIT = '0';

// dockerd 20.10 (Debian's docker.io) knows only the ':' forms of the modifiers ("${v-x}" is
// refused there), no ${v#p} / ${v%p}, and no COPY --chmod: those are covered by the other tests.
const DOCKERFILES: Record<string, string> = {
  expansion: [
    'ARG BASE=busybox',
    'FROM ${BASE:-none} AS first',
    'ARG V=value',
    'ARG EMPTY=',
    'ENV A=$V B=${V}x C="${V} quoted" D=\'${V}\' E=\\$V F=${EMPTY:-dflt} G=${EMPTY:+alt} H=${V:+alt} I=${NOPE:+alt}',
    'ENV J=${A}-${B}',
    'LABEL l1=$A "l 2"="${C}" l3=${V}',
    'WORKDIR /t/$A',
    'WORKDIR rel',
    'RUN echo "$A|$B|$C|$D|$E|$F|$G|$H|$I|$J|$V" > /t/values',
    'USER ${NOPE:-1000}:${NOPE:-1000}',
    'STOPSIGNAL ${SIG:-SIGTERM}',
    'EXPOSE ${PORT:-8080}/tcp 53/udp',
    'VOLUME ["/vol-$A"]',
  ].join('\n') + '\n',
  instructions: [
    'FROM busybox',
    'SHELL ["/bin/sh", "-e", "-c"]',
    'RUN mkdir -p /t && echo run > /t/run && chmod 640 /t/run',
    'COPY files/ /t/copied/',
    'COPY --chown=1000:1000 files/a.txt /t/owned',
    'COPY files/*.txt /t/glob/',
    'ADD files/arch.tar /t/unpacked/',
    'HEALTHCHECK --interval=30s --timeout=3s --start-period=1s --retries=2 CMD ["true"]',
    'ONBUILD RUN echo child',
    'ENTRYPOINT ["/bin/sh", "-c"]',
    'CMD ["echo hi"]',
    'ENV PATH=/usr/bin:/bin',
  ].join('\n') + '\n',
  'cmd-shell-form': [
    'FROM busybox',
    'ENTRYPOINT echo entry',
    'CMD echo cmd',
    'HEALTHCHECK NONE',
    'WORKDIR /t',
    'RUN touch /t/marker',
  ].join('\n') + '\n',
};

const CONFIG_KEYS = ['Cmd', 'Entrypoint', 'Env', 'WorkingDir', 'User', 'Labels', 'ExposedPorts', 'Volumes', 'Healthcheck', 'StopSignal', 'Shell', 'OnBuild'];
const TREE = 'find /t | sort | while read f; do stat -c "%n %a %u:%g %F" "$f"; if [ -f "$f" ] && [ ! -L "$f" ]; then md5sum < "$f"; fi; done';

let d: Daemon;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-build-diff-'));

function contextFor(name: string): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(path.join(dir, 'files', 'sub'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'Dockerfile'), DOCKERFILES[name]!);
  fs.writeFileSync(path.join(dir, 'files', 'a.txt'), 'a\n');
  fs.writeFileSync(path.join(dir, 'files', 'b.txt'), 'b\n');
  fs.writeFileSync(path.join(dir, 'files', 'sub', 'c'), 'c\n');
  fs.chmodSync(path.join(dir, 'files', 'b.txt'), 0o755);
  fs.symlinkSync('a.txt', path.join(dir, 'files', 'link'));
  // A tar with fixed owners and modes, so both engines unpack the same thing.
  fs.writeFileSync(path.join(dir, 'files', 'arch.tar'), Buffer.concat([tarEntry('x/', '', 0o750, 5), tarEntry('x/y', 'y\n', 0o604, 6), Buffer.alloc(1024)]));
  return dir;
}

/** One ustar entry (a directory when name ends in '/'). */
function tarEntry(name: string, content: string, mode: number, owner: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0);
  const oct = (v: number, off: number, w: number) => h.write(v.toString(8).padStart(w - 1, '0') + '\0', off);
  oct(mode, 100, 8);
  oct(owner, 108, 8);
  oct(owner, 116, 8);
  oct(Buffer.byteLength(content), 124, 12);
  oct(1600000000, 136, 12);
  h.write(name.endsWith('/') ? '5' : '0', 156);
  h.write('ustar\x0000', 257);
  h.fill(' ', 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  const body = Buffer.alloc(Math.ceil(Buffer.byteLength(content) / 512) * 512);
  body.write(content);
  return Buffer.concat([h, body]);
}

interface Result { config: Record<string, unknown>; tree: string }

type DockerRun = (args: string[]) => Promise<RunResult>;

async function buildAndDescribe(docker: DockerRun, name: string, extra: string[] = []): Promise<Result> {
  const b = await docker(['build', ...extra, '-t', `diff-${name}`, contextFor(name)]);
  assert.equal(b.code, 0, `${name}: ${b.stderr}\n${b.stdout}`);
  const inspect = await docker(['image', 'inspect', `diff-${name}`]);
  const cfg = (JSON.parse(inspect.stdout) as { Config: Record<string, unknown> }[])[0]!.Config;
  const config: Record<string, unknown> = {};
  // Absent, null and empty are one thing to a user reading inspect.
  for (const k of CONFIG_KEYS) {
    const v = cfg[k];
    config[k] = v === undefined || v === '' || (Array.isArray(v) && v.length === 0) || (v && typeof v === 'object' && Object.keys(v).length === 0) ? null : v;
  }
  const t = await docker(['run', '--rm', '--user', '0:0', '--entrypoint', 'sh', `diff-${name}`, '-c', TREE]);
  assert.equal(t.code, 0, t.stderr);
  return { config, tree: t.stdout };
}

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
});

after(async () => {
  await d?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const berthDocker: DockerRun = (args) => d.docker(args, { env: { DOCKER_BUILDKIT: '0' }, timeoutMs: 180_000 });

test('berthd: the differential Dockerfiles build, and two --no-cache builds agree', { timeout: 300_000 }, async () => {
  for (const name of Object.keys(DOCKERFILES)) {
    const a = await buildAndDescribe(berthDocker, name);
    fs.rmSync(path.join(tmp, name), { recursive: true, force: true });
    const b = await buildAndDescribe(berthDocker, name, ['--no-cache']);
    fs.rmSync(path.join(tmp, name), { recursive: true, force: true });
    assert.deepEqual(b, a, name);
  }
  // One value a user checks by hand: the expansion rules, as the Dockerfile reference states them.
  const r = await berthDocker(['run', '--rm', '--entrypoint', 'cat', 'diff-expansion', '/t/values']);
  assert.equal(r.stdout, 'value|valuex|value quoted|${V}|$V|dflt||alt||value-valuex|value\n');
});

const dockerd = which('dockerd');
test('berthd and dockerd build identical configs and trees', {
  timeout: 900_000,
  skip: dockerd ? false : 'dockerd is not installed (Debian package docker.io): nothing to compare against',
}, async () => {
  let peer: Engine | undefined;
  try {
    peer = await startDockerd(dockerd!);
    await loadBusybox(peer);
    const peerDocker: DockerRun = (args) => peer!.docker(args, 180_000);
    for (const name of Object.keys(DOCKERFILES)) {
      const ours = await buildAndDescribe(berthDocker, name);
      fs.rmSync(path.join(tmp, name), { recursive: true, force: true });
      const theirs = await buildAndDescribe(peerDocker, name);
      fs.rmSync(path.join(tmp, name), { recursive: true, force: true });
      assert.deepEqual(ours, theirs, name);
    }
  } catch (err) {
    printLogTail(d);
    throw err;
  } finally {
    await peer?.stop();
  }
});
