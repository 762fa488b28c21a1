/**
 * Dockerfile builds against berthd, driven by the real docker CLI (classic builder: DOCKER_BUILDKIT=0,
 * as the machine has no buildx) and by `berth build`: every instruction, the expansion rules, ARG/ENV
 * scoping, COPY/ADD rules, multi-stage, the cache, .dockerignore, failures and context escapes.
 * Images are checked the way a user checks them: inspect, history, and containers run from them.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { startDaemon, loadTestImages, leftovers, printLogTail, type Daemon, type RunResult } from '../harness.js';

let d: Daemon;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-build-test-'));
const LEGACY = { DOCKER_BUILDKIT: '0' };

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
});

after(async () => {
  await d?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

type FileSpec = string | { content: string; mode?: number } | { symlink: string };

/** A context directory with these files (paths relative, parents created). */
function context(files: Record<string, FileSpec>): string {
  const dir = fs.mkdtempSync(path.join(tmp, 'ctx-'));
  for (const [name, spec] of Object.entries(files)) {
    const p = path.join(dir, name);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    if (typeof spec === 'string') fs.writeFileSync(p, spec);
    else if ('symlink' in spec) fs.symlinkSync(spec.symlink, p);
    else {
      fs.writeFileSync(p, spec.content);
      if (spec.mode !== undefined) fs.chmodSync(p, spec.mode);
    }
  }
  return dir;
}

async function docker(args: string[], input?: string): Promise<RunResult> {
  return d.docker(args, { env: LEGACY, input, timeoutMs: 180_000 });
}

async function ok(r: Promise<RunResult> | RunResult, what = 'command'): Promise<RunResult> {
  const res = await r;
  if (res.code !== 0) printLogTail(d, `${what} exited ${res.code}: ${res.stderr}`);
  assert.equal(res.code, 0, `${what}: ${res.stderr}\n${res.stdout}`);
  return res;
}

async function build(dir: string, ...args: string[]): Promise<RunResult> {
  return ok(docker(['build', ...args, dir]), `docker build ${args.join(' ')}`);
}

async function inspect(ref: string) {
  return JSON.parse((await ok(docker(['image', 'inspect', ref]))).stdout)[0];
}

async function runIn(image: string, script: string): Promise<string> {
  return (await ok(docker(['run', '--rm', image, 'sh', '-c', script]), `run ${script}`)).stdout;
}

test('docker build: metadata instructions give the image config docker would write', { timeout: 180_000 }, async () => {
  const dir = context({
    Dockerfile: [
      '# syntax=docker/dockerfile:1',
      'from busybox',
      'ENV A=1 B="two words" \\',
      '    C=${A}-x',
      'ENV LEGACY value with spaces',
      'LABEL org.example.k="v v" other=$A',
      'EXPOSE 80 443/udp 8000-8002',
      'VOLUME ["/data"]',
      'VOLUME /v1 /v2',
      'WORKDIR /app',
      'WORKDIR sub',
      'USER 1000:1000',
      'STOPSIGNAL SIGUSR1',
      'HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD wget -q -O- http://localhost/ || exit 1',
      'SHELL ["/bin/sh", "-e", "-c"]',
      'ONBUILD RUN echo triggered > /tmp/onbuild',
      'ENTRYPOINT ["/bin/echo"]',
      'CMD ["hello"]',
      'MAINTAINER someone@example.com',
    ].join('\n') + '\n',
  });
  const r = await build(dir, '-t', 'meta:1');
  assert.match(r.stdout, /\nStep 1\/17 : from busybox\n/);
  assert.match(r.stdout, /Step 2\/17 : ENV A=1 B="two words" {5}C=\$\{A\}-x\n/);
  assert.match(r.stdout, /Successfully built [a-f0-9]{12}\nSuccessfully tagged meta:1\n/);
  const img = await inspect('meta:1');
  const c = img.Config;
  // C=${A}-x sees A as it was before this ENV (unset), as docker does.
  assert.deepEqual(c.Env, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'A=1', 'B=two words', 'C=-x', 'LEGACY=value with spaces']);
  assert.deepEqual(c.Labels, { 'org.example.k': 'v v', other: '1' });
  assert.deepEqual(Object.keys(c.ExposedPorts).sort(), ['443/udp', '80/tcp', '8000/tcp', '8001/tcp', '8002/tcp']);
  assert.deepEqual(c.Volumes, { '/data': {}, '/v1': {}, '/v2': {} });
  assert.equal(c.WorkingDir, '/app/sub');
  assert.equal(c.User, '1000:1000');
  assert.equal(c.StopSignal, 'SIGUSR1');
  assert.deepEqual(c.Healthcheck, { Test: ['CMD-SHELL', 'wget -q -O- http://localhost/ || exit 1'], Interval: 5e9, Timeout: 2e9, Retries: 4 });
  assert.deepEqual(c.Shell, ['/bin/sh', '-e', '-c']);
  assert.deepEqual(c.OnBuild, ['RUN echo triggered > /tmp/onbuild']);
  assert.deepEqual(c.Entrypoint, ['/bin/echo']);
  assert.deepEqual(c.Cmd, ['hello']);
  assert.equal(img.Author, 'someone@example.com');
  // WORKDIR made the directories: a layer; the other steps are config only.
  const hist = (await ok(docker(['history', '--no-trunc', '--format', '{{.CreatedBy}}', 'meta:1']))).stdout.split('\n');
  assert.ok(hist.some((h) => h.includes('#(nop) WORKDIR /app/sub')), hist.join('\n'));
  const run = await ok(docker(['run', '--rm', 'meta:1']));
  assert.equal(run.stdout, 'hello\n');

  // The ONBUILD trigger runs in the child build, and the child does not inherit it.
  const child = context({ Dockerfile: 'FROM meta:1\nUSER root\n' });
  const cr = await build(child, '-t', 'meta:child');
  assert.match(cr.stdout, /# Executing 1 build trigger\n/);
  const ci = await inspect('meta:child');
  assert.equal(ci.Config.OnBuild, null);
  assert.equal((await ok(docker(['run', '--rm', '--entrypoint', 'cat', 'meta:child', '/tmp/onbuild']))).stdout, 'triggered\n');
});

test('RUN: shell and exec form, SHELL honoured, build args in the environment but not in the image, heredocs', { timeout: 180_000 }, async () => {
  const dir = context({
    Dockerfile: [
      'ARG BASE=busybox',
      'FROM $BASE',
      'ARG GREETING=hi',
      'ARG FROMCLI',
      'ENV KEPT=env',
      'RUN echo "$GREETING $FROMCLI $KEPT $HTTP_PROXY" > /run.txt',
      'RUN ["/bin/sh", "-c", "echo exec-form > /exec.txt"]',
      'SHELL ["/bin/sh", "-c", "echo shell-used >> /shell.txt; eval \\"$1\\"", "shell"]',
      'RUN true',
      'SHELL ["/bin/sh", "-c"]',
      'RUN <<EOF',
      'echo from heredoc > /heredoc.txt',
      'echo second line >> /heredoc.txt',
      'EOF',
      'RUN cat <<A > /a.txt && cat <<-B > /b.txt',
      'alpha',
      'A',
      '\tbeta',
      '\tB',
      'COPY <<EOF /copied.txt',
      'value of greeting: ${GREETING}',
      'EOF',
    ].join('\n') + '\n',
  });
  const r = await build(dir, '--build-arg', 'FROMCLI=cli', '--build-arg', 'HTTP_PROXY=http://proxy:1', '--build-arg', 'UNUSED=1', '-t', 'runs');
  assert.match(r.stdout, /\[Warning\] One or more build-args \[UNUSED\] were not consumed/);
  const out = await runIn('runs', 'cat /run.txt /exec.txt /shell.txt /heredoc.txt /a.txt /b.txt /copied.txt');
  assert.equal(out, 'hi cli env http://proxy:1\nexec-form\nshell-used\nfrom heredoc\nsecond line\nalpha\nbeta\nvalue of greeting: hi\n');
  const env = (await inspect('runs')).Config.Env as string[];
  assert.ok(env.includes('KEPT=env'));
  assert.ok(!env.some((e) => /^(GREETING|FROMCLI|HTTP_PROXY)=/.test(e)), `build args leaked into the image: ${env}`);
  // The history records which args a RUN saw (docker's "|N k=v" prefix).
  const hist = (await ok(docker(['history', '--no-trunc', '--format', '{{.CreatedBy}}', 'runs']))).stdout;
  assert.match(hist, /\|3 FROMCLI=cli GREETING=hi HTTP_PROXY=http:\/\/proxy:1 \/bin\/sh -c echo "\$GREETING/);
});

test('RUN honours the build\'s --memory and --network and RUN --network', { timeout: 180_000 }, async () => {
  const dir = context({
    Dockerfile: [
      'FROM busybox',
      'RUN (cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max) > /mem.txt',
      'RUN --network=none ls /sys/class/net > /net-none.txt',
      'RUN ls /sys/class/net > /net-build.txt',
    ].join('\n') + '\n',
  });
  await build(dir, '--memory', '64m', '--network', 'host', '-t', 'runopts');
  const [mem, none, ...ifaces] = (await runIn('runopts', 'cat /mem.txt /net-none.txt /net-build.txt')).trim().split('\n');
  assert.equal(mem, String(64 * 1024 * 1024));
  assert.equal(none, 'lo');
  // The host's default-route interface (other tests add and remove veths meanwhile; this one stays).
  const route = fs.readFileSync('/proc/net/route', 'utf8').split('\n').find((l) => l.split('\t')[1] === '00000000');
  const uplink = route?.split('\t')[0];
  assert.ok(uplink, 'the host has a default route');
  assert.ok(ifaces.includes(uplink), `RUN saw the host's ${uplink} under --network host: ${ifaces.join(" ")}`);
});

test('COPY and ADD: wildcards, file vs directory destinations, --chown by name and id, --chmod, archives, URLs', { timeout: 180_000 }, async () => {
  const tarDir = fs.mkdtempSync(path.join(tmp, 'tarsrc-'));
  fs.mkdirSync(path.join(tarDir, 'pkg'));
  fs.writeFileSync(path.join(tarDir, 'pkg', 'inside.txt'), 'from the archive\n');
  const files: Record<string, FileSpec> = {
    'a.txt': 'A\n', 'b.txt': 'B\n', 'c.md': 'C\n',
    'script.sh': { content: '#!/bin/sh\necho run\n', mode: 0o750 },
    'tree/one': '1\n', 'tree/sub/two': '2\n', 'tree/link': { symlink: 'one' },
  };
  const dir = context(files);
  execFileSync('tar', ['-czf', path.join(dir, 'arch.tar.gz'), '-C', tarDir, 'pkg']);
  execFileSync('tar', ['-cjf', path.join(dir, 'arch.tar.bz2'), '-C', tarDir, 'pkg']);
  execFileSync('tar', ['-cJf', path.join(dir, 'arch.tar.xz'), '-C', tarDir, 'pkg']);
  execFileSync('sh', ['-c', `tar -cf - -C ${tarDir} pkg | zstd -q -o ${path.join(dir, 'arch.tar.zst')}`]);
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Last-Modified': new Date('2020-01-02T03:04:05Z').toUTCString() });
    res.end(`served ${req.url}\n`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    fs.writeFileSync(path.join(dir, 'Dockerfile'), [
      'FROM busybox',
      'RUN echo app:x:1234:1234::/home/app:/bin/sh >> /etc/passwd && echo grp:x:2345: >> /etc/group',
      'COPY *.txt /multi/',
      'COPY a.txt /renamed.txt',
      'COPY a.txt /existing/',
      'COPY tree /tree',
      'COPY --chown=app:grp b.txt /owned-by-name',
      'COPY --chown=77 b.txt /owned-by-id',
      'COPY --chmod=600 script.sh /chmod.sh',
      'COPY script.sh /keep.sh',
      'WORKDIR /rel',
      'COPY c.md here.md',
      'ADD arch.tar.gz /gz/',
      'ADD arch.tar.bz2 /bz2',
      'ADD arch.tar.xz /xz',
      'ADD arch.tar.zst /zst',
      'COPY arch.tar.gz /not-extracted/',
      `ADD http://127.0.0.1:${port}/file.txt /downloaded/`,
    ].join('\n') + '\n');
    await build(dir, '-t', 'copies');
    const out = await runIn('copies', [
      'cd /', 'ls multi', 'cat renamed.txt existing/a.txt', 'ls -a tree tree/sub', 'readlink tree/link',
      'stat -c "%n %u:%g %a" owned-by-name owned-by-id chmod.sh keep.sh multi/a.txt', 'cat /rel/here.md',
      'cat gz/pkg/inside.txt bz2/pkg/inside.txt xz/pkg/inside.txt zst/pkg/inside.txt', 'ls not-extracted',
      'cat downloaded/file.txt', 'stat -c "%a %Y" downloaded/file.txt',
    ].join(' && '));
    assert.equal(out, [
      'a.txt', 'b.txt', 'A', 'A', 'tree:', '.', '..', 'link', 'one', 'sub', '', 'tree/sub:', '.', '..', 'two', 'one',
      'owned-by-name 1234:2345 644', 'owned-by-id 77:77 644', 'chmod.sh 0:0 600', 'keep.sh 0:0 750', 'multi/a.txt 0:0 644',
      'C', 'from the archive', 'from the archive', 'from the archive', 'from the archive', 'arch.tar.gz', 'served /file.txt',
      `600 ${Date.parse('2020-01-02T03:04:05Z') / 1000}`,
    ].join('\n') + '\n');
  } finally {
    server.close();
  }
  // Several sources need a directory destination ending in '/'.
  const bad = context({ 'a.txt': 'A', 'b.txt': 'B', Dockerfile: 'FROM busybox\nCOPY a.txt b.txt /dest\n' });
  const r = await docker(['build', bad]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /Dockerfile:2 COPY a.txt b.txt \/dest: When using COPY with more than one source file, the destination must be a directory and end with a \//);
});

test('multi-stage: --target, only the needed stages run, COPY --from a stage name, an index and an image', { timeout: 180_000 }, async () => {
  const dir = context({
    Dockerfile: [
      'FROM busybox AS base',
      'RUN echo base > /base.txt',
      'FROM base AS never',
      'RUN echo this stage is not needed && exit 9',
      'FROM busybox AS builder',
      'RUN echo built > /artifact',
      'FROM scratch AS final',
      'COPY --from=builder /artifact /artifact',
      'COPY --from=0 /base.txt /base.txt',
      'COPY --from=busybox /bin/busybox /bin/busybox',
      'CMD ["/bin/busybox", "cat", "/artifact", "/base.txt"]',
      'FROM final AS other',
      'RUN exit 5',
    ].join('\n') + '\n',
  });
  const r = await build(dir, '--target', 'final', '-t', 'multi');
  assert.doesNotMatch(r.stdout, /this stage is not needed/);
  assert.doesNotMatch(r.stdout, /RUN exit 5/);
  assert.equal((await ok(docker(['run', '--rm', 'multi']))).stdout, 'built\nbase\n');
  const img = await inspect('multi');
  assert.equal(img.RootFS.Layers.length, 3, 'scratch + three COPY layers');
  // FROM --platform: the local image serves when it is of that platform; another platform needs a pull.
  const arch = process.arch === 'arm64' ? 'arm64' : 'amd64';
  const other = arch === 'amd64' ? 'arm64' : 'amd64';
  // (Named after a registry on a closed loopback port: the pull it needs stays on this machine.)
  await ok(docker(['tag', 'busybox', '127.0.0.1:9/busybox']));
  await build(context({ Dockerfile: `FROM --platform=linux/${arch} 127.0.0.1:9/busybox\nRUN true\n` }));
  const foreign = await docker(['build', context({ Dockerfile: `FROM --platform=linux/${other} 127.0.0.1:9/busybox\nRUN true\n` })]);
  assert.equal(foreign.code, 1);
  assert.match(foreign.stderr, new RegExp(`Dockerfile:1 FROM --platform=linux/${other} 127.0.0.1:9/busybox: pull access denied or repository does not exist for 127.0.0.1:9/busybox \\(platform linux/${other}\\)`));
  const missing = await docker(['build', '--target', 'nosuch', dir]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /failed to reach build target nosuch in Dockerfile/);
});

test('ARG scoping: a global ARG is seen by FROM and by a stage only when redeclared; stage ARGs end with their stage', { timeout: 180_000 }, async () => {
  const dir = context({
    Dockerfile: [
      'ARG IMG=busybox',
      'ARG GLOBAL=g',
      'FROM $IMG AS one',
      'ARG STAGE=s1',
      'RUN echo "one:[$GLOBAL][$STAGE]" > /one.txt',
      'FROM $IMG',
      'ARG GLOBAL',
      'COPY --from=one /one.txt /one.txt',
      'RUN echo "two:[$GLOBAL][$STAGE]" > /two.txt',
    ].join('\n') + '\n',
  });
  await build(dir, '--build-arg', 'GLOBAL=from-cli', '-t', 'argscope');
  assert.equal(await runIn('argscope', 'cat /one.txt /two.txt'), 'one:[][s1]\ntwo:[from-cli][]\n');
});

test('docker build -f - (Dockerfile on stdin) and docker build - (a tar context on stdin)', { timeout: 180_000 }, async () => {
  const dir = context({ 'in.txt': 'ctx\n' });
  await ok(docker(['build', '-f', '-', '-t', 'stdin-df', dir], 'FROM busybox\nCOPY in.txt /in.txt\n'), 'docker build -f -');
  assert.equal(await runIn('stdin-df', 'cat /in.txt'), 'ctx\n');
  fs.writeFileSync(path.join(dir, 'Dockerfile'), 'FROM busybox\nCOPY in.txt /again.txt\n');
  const tarball = execFileSync('tar', ['-c', '-C', dir, '.']);
  const r = await d.docker(['build', '-t', 'stdin-tar', '-'], { env: LEGACY, input: tarball, timeoutMs: 180_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await runIn('stdin-tar', 'cat /again.txt'), 'ctx\n');
});

test('cache: an unchanged rebuild is all cache hits, a changed file rebuilds from its step, and the cache survives a kill -9 of the daemon', { timeout: 240_000 }, async () => {
  const dir = context({
    'one.txt': '1\n', 'two.txt': '2\n',
    Dockerfile: 'FROM busybox\nENV X=1\nRUN echo step > /s\nCOPY one.txt /one\nRUN cat /one\nCOPY two.txt /two\nCMD ["cat", "/two"]\n',
  });
  const first = await build(dir, '-t', 'cached');
  assert.doesNotMatch(first.stdout, /Using cache/);
  const id1 = (await inspect('cached')).Id;
  const second = await build(dir, '-t', 'cached');
  assert.equal(second.stdout.match(/Using cache/g)?.length, 6, second.stdout);
  assert.equal((await inspect('cached')).Id, id1);

  fs.appendFileSync(path.join(dir, 'two.txt'), 'changed\n');
  const third = await build(dir, '-t', 'cached');
  // Steps 2-5 hit; step 6 (COPY two.txt) and 7 run again.
  assert.equal(third.stdout.match(/Using cache/g)?.length, 4, third.stdout);
  assert.match(third.stdout, /Step 6\/7 : COPY two.txt \/two\n ---> [a-f0-9]{12}\n/);
  assert.equal((await ok(docker(['run', '--rm', 'cached']))).stdout, '2\nchanged\n');

  await d.restart(); // kill -9, then a new berthd on the same roots
  const fourth = await build(dir, '-t', 'cached');
  assert.equal(fourth.stdout.match(/Using cache/g)?.length, 6, fourth.stdout);
  const nocache = await build(dir, '--no-cache', '-t', 'cached');
  assert.doesNotMatch(nocache.stdout, /Using cache/);
});

test('builder prune forgets the cache and removes the intermediate images nothing needs; a tagged image keeps its own', { timeout: 240_000 }, async () => {
  const dir = context({ Dockerfile: 'FROM busybox\nRUN echo a > /a\nRUN echo b > /b\nCMD ["cat", "/a", "/b"]\n' });
  await build(dir, '-t', 'kept');
  const untagged = context({ Dockerfile: 'FROM busybox\nRUN echo loose > /l\nRUN echo more > /m\n' });
  const loose = (await build(untagged, '-q')).stdout.trim();
  const allBefore = (await ok(docker(['images', '-aq']))).stdout.trim().split('\n');
  assert.ok(allBefore.includes(loose.replace(/^sha256:/, '').slice(0, 12)), allBefore.join(' '));

  const pruned = await ok(docker(['builder', 'prune', '-f']), 'builder prune');
  assert.match(pruned.stdout, /^Deleted build cache objects:\n([a-f0-9]{64}\n)+\nTotal reclaimed space: \d/, pruned.stdout);
  assert.equal((await d.docker(['image', 'inspect', loose])).code, 1, 'the untagged build result and its steps are gone');
  assert.equal((await ok(docker(['run', '--rm', 'kept']))).stdout, 'a\nb\n', 'the tagged image still runs');
  const rebuilt = await build(dir, '-t', 'kept');
  assert.doesNotMatch(rebuilt.stdout, /Using cache/, 'the cache was forgotten');

  // berth's own CLI, and system prune's build-cache part (no 404 in the middle of it).
  const again = await d.berth(['builder', 'prune', '-f']);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /Total reclaimed space: /);
  const system = await ok(docker(['system', 'prune', '-f']), 'system prune');
  assert.match(system.stdout, /Total reclaimed space: /);
  const bad = await docker(['builder', 'prune', '-f', '--filter', 'label=x']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /invalid filter 'label'/);
  await ok(docker(['rmi', 'kept']));
});

test('.dockerignore: **, ! exceptions, leading /, and the Dockerfile and .dockerignore themselves', { timeout: 180_000 }, async () => {
  const dir = context({
    '.dockerignore': '# comment\n**/*.log\n/secret\nbuild\n!build/keep.txt\nDockerfile\n.dockerignore\n',
    'app.txt': 'app\n', 'x.log': 'l', 'deep/er/y.log': 'l', 'deep/er/z.txt': 'z\n', secret: 's',
    'sub/secret': 'not-root\n', 'build/drop.txt': 'd', 'build/keep.txt': 'k\n',
    Dockerfile: 'FROM busybox\nCOPY . /ctx/\nRUN cd /ctx && find . -type f | sort\n',
  });
  for (const tool of ['docker', 'berth'] as const) {
    const r = await ok(tool === 'docker' ? docker(['build', '--no-cache', '-t', `ign-${tool}`, dir]) : d.berth(['build', '--no-cache', '-t', `ign-${tool}`, dir]), `${tool} build`);
    assert.match(r.stdout, /\.\/app\.txt\n\.\/build\/keep\.txt\n\.\/deep\/er\/z\.txt\n\.\/sub\/secret\n ---> /, `${tool}: ${r.stdout}`);
  }
});

test('context escapes are refused: ../, a symlink pointing outside, an absolute path', { timeout: 120_000 }, async () => {
  const outside = path.join(tmp, 'outside-secret');
  fs.writeFileSync(outside, 'host secret\n');
  const cases: [string, RegExp][] = [
    ['COPY ../outside-secret /x', /forbidden path outside the build context: \.\.\/outside-secret/],
    ['COPY link /x', /file not found in build context/],
    [`COPY ${outside} /x`, /file not found in build context/],
    ['ADD link /x', /file not found in build context/],
  ];
  for (const [line, want] of cases) {
    const dir = context({ link: { symlink: outside }, Dockerfile: `FROM busybox\n${line}\n` });
    const r = await docker(['build', '-t', 'escape', dir]);
    assert.equal(r.code, 1, line);
    assert.match(r.stderr, want, line);
    assert.match(r.stderr, /Dockerfile:2 /, line);
  }
  assert.equal((await docker(['image', 'inspect', 'escape'])).code, 1, 'nothing was tagged');
});

test('a failed step names the instruction and line, shows its output, removes its container and tags nothing', { timeout: 120_000 }, async () => {
  const dir = context({ Dockerfile: 'FROM busybox\nRUN echo before\nRUN echo some output && \\\n  exit 3\nCMD ["x"]\n' });
  const before = (await ok(docker(['ps', '-aq']))).stdout;
  const r = await docker(['build', '-t', 'failed:1', dir]);
  assert.equal(r.code, 3, 'the exit code of the failed command');
  assert.match(r.stdout, /some output\n/);
  assert.match(r.stderr, /Dockerfile:3 RUN echo some output && {3}exit 3: The command '\/bin\/sh -c echo some output && {3}exit 3' returned a non-zero code: 3/);
  assert.equal((await ok(docker(['ps', '-aq']))).stdout, before, 'no intermediate container left');
  assert.equal((await docker(['image', 'inspect', 'failed:1'])).code, 1);

  const parse = await docker(['build', context({ Dockerfile: 'FROM busybox\nFROBNICATE x\n' })]);
  assert.equal(parse.code, 1);
  assert.match(parse.stderr, /dockerfile parse error on line 2: unknown instruction: FROBNICATE/);
  const empty = await docker(['build', context({ Dockerfile: '# nothing\n' })]);
  assert.match(empty.stderr, /the Dockerfile cannot be empty/);
  const noFrom = await docker(['build', context({ Dockerfile: 'RUN true\n' })]);
  assert.match(noFrom.stderr, /line 1: no build stage in current context/);
  const flag = await docker(['build', context({ Dockerfile: 'FROM busybox\nCOPY --bogus=1 a b\n' })]);
  assert.match(flag.stderr, /line 2: unknown flag: bogus/);
});

test('berth build: -f -, -f outside the context, --build-arg, --label, --iidfile, -q, several -t', { timeout: 180_000 }, async () => {
  const dir = context({ 'f.txt': 'file\n' });
  const iid = path.join(tmp, 'iid');
  const r = await ok(d.berth(['build', '-q', '-f', '-', '--build-arg', 'V=from-arg', '--label', 'a=b', '--iidfile', iid, '-t', 'bb:1', '-t', 'bb:2', dir], {
    input: 'FROM busybox\nARG V\nCOPY f.txt /f.txt\nRUN echo $V > /v\n',
  }), 'berth build -f -');
  const id = fs.readFileSync(iid, 'utf8');
  assert.match(id, /^sha256:[a-f0-9]{64}$/);
  assert.equal(r.stdout, `${id}\n`, '-q prints only the ID');
  const img = await inspect('bb:1');
  assert.equal(img.Id, id);
  assert.deepEqual(img.RepoTags.sort(), ['bb:1', 'bb:2']);
  assert.deepEqual(img.Config.Labels, { a: 'b' });
  assert.equal(await runIn('bb:2', 'cat /f.txt /v'), 'file\nfrom-arg\n');

  const df = path.join(tmp, 'Other.dockerfile');
  fs.writeFileSync(df, 'FROM busybox\nCOPY f.txt /g.txt\n');
  const r2 = await ok(d.berth(['build', '-f', df, '-t', 'bb:3', dir]), 'berth build -f path');
  assert.match(r2.stdout, /Step 2\/2 : COPY f.txt \/g.txt/);
  assert.equal(await runIn('bb:3', 'cat /g.txt'), 'file\n');
  const fail = await d.berth(['build', context({ Dockerfile: 'FROM busybox\nRUN exit 4\n' })]);
  assert.equal(fail.code, 4);
  assert.match(fail.stderr, /returned a non-zero code: 4/);
});

test('a remote Dockerfile served on 127.0.0.1 builds (remote=), other hosts are refused', { timeout: 120_000 }, async () => {
  const server = http.createServer((_req, res) => res.end('FROM busybox\nRUN echo remote > /remote.txt\n'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as { port: number }).port;
    await ok(docker(['build', '-t', 'remote', `http://127.0.0.1:${port}/Dockerfile`]), 'remote build');
    assert.equal(await runIn('remote', 'cat /remote.txt'), 'remote\n');
    const far = await d.api('POST', `/build?remote=${encodeURIComponent('http://192.0.2.1/Dockerfile')}`);
    assert.match(JSON.stringify(far.body), /remote contexts other than http\(s\) on the loopback address are not supported/);
  } finally {
    server.close();
  }
});

test('the API: POST /build streams docker JSON messages, refuses unsupported options, removes its context', { timeout: 120_000 }, async () => {
  const r = await d.api('POST', '/build?squash=1');
  assert.equal(r.status, 400);
  assert.match(JSON.stringify(r.body), /squash is not supported/);
  const contexts = fs.readdirSync(path.join(d.dataRoot, 'build', 'contexts')).length;
  assert.equal(contexts, 0, 'no context left behind after the builds');
  const left = leftovers(d);
  assert.deepEqual([left.mounts, left.processes], [[], []], 'no step snapshot mounted, no RUN container running');
  // docker images hides the intermediate images builds leave; -a shows them.
  const plain = (await ok(docker(['images', '-q']))).stdout.trim().split('\n').length;
  const all = (await ok(docker(['images', '-aq']))).stdout.trim().split('\n').length;
  assert.ok(all > plain, `images -a (${all}) lists the intermediates that images (${plain}) hides`);
});
