import { test, describe, after, before } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { parseFlags, parseEnvFile, FlagError } from '../../src/cli/flags.js';
import { runFlags, buildCreate } from '../../src/cli/commands/run.js';
import { Template, TemplateError } from '../../src/cli/template.js';
import { humanDuration, humanSize, bytesSize, tabwrite, ellipsis, ramInBytes } from '../../src/cli/format.js';
import { displayPorts, containerRow } from '../../src/cli/commands/containers.js';
import { imageRows } from '../../src/cli/commands/images.js';
import { Demuxer } from '../../src/cli/http.js';
import { main } from '../../src/cli/main.js';

describe('flag parsing', () => {
  test('run: flags stop at IMAGE, the rest is the command', () => {
    const p = parseFlags(['-dit', '--name=web', '-e', 'A=1', '-eB=2', '--rm', 'busybox', 'sh', '-c', 'echo -n hi', '--rm'], runFlags, { interspersed: false });
    assert.equal(p.bool('detach'), true);
    assert.equal(p.bool('interactive'), true);
    assert.equal(p.bool('tty'), true);
    assert.equal(p.bool('rm'), true);
    assert.equal(p.str('name'), 'web');
    assert.deepEqual(p.list('env'), ['A=1', 'B=2']);
    assert.deepEqual(p.args, ['busybox', 'sh', '-c', 'echo -n hi', '--rm']);
  });

  test('last short flag of a cluster may take a value; --bool=false; --', () => {
    const p = parseFlags(['-dp', '8080:80', '--rm=false', '--', '-image'], runFlags, { interspersed: false });
    assert.deepEqual(p.list('publish'), ['8080:80']);
    assert.equal(p.bool('rm'), false);
    assert.deepEqual(p.args, ['-image']);
  });

  test('interspersed commands accept flags after arguments', () => {
    const p = parseFlags(['a', '-f', 'b'], [{ long: 'force', short: 'f', kind: 'bool', help: '' }], { interspersed: true });
    assert.equal(p.bool('force'), true);
    assert.deepEqual(p.args, ['a', 'b']);
  });

  test('errors use pflag wording', () => {
    assert.throws(() => parseFlags(['--x'], runFlags, { interspersed: false }), new FlagError('unknown flag: --x'));
    assert.throws(() => parseFlags(['-Z'], runFlags, { interspersed: false }), new FlagError("unknown shorthand flag: 'Z' in -Z"));
    assert.throws(() => parseFlags(['-e'], runFlags, { interspersed: false }), new FlagError("flag needs an argument: 'e' in -e"));
    assert.throws(() => parseFlags(['--name'], runFlags, { interspersed: false }), new FlagError('flag needs an argument: --name'));
  });

  test('--env-file: comments, blanks, bare names from the environment', () => {
    const env = parseEnvFile('# c\n\nA=1\nB = x\nHOME_X\nMISSING\n  C=spaced value\n', { HOME_X: '/h' });
    assert.deepEqual(env, ['A=1', 'B = x', 'HOME_X=/h', 'C=spaced value']);
  });

  test('run flags become a create body like docker sends', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cli-'));
    try {
      fs.writeFileSync(path.join(dir, 'env'), 'FROM_FILE=1\n');
      const p = parseFlags(
        ['--rm', '-i', '--env-file', path.join(dir, 'env'), '-e', 'A=1', '-p', '127.0.0.1:8080:80/udp', '-m', '512m', '--cpus', '1.5', '-l', 'k=v', '--restart', 'on-failure:3', '--entrypoint', '', '-v', '/data', '-v', '/h:/c:ro', 'busybox', 'echo', 'hi'],
        runFlags,
        { interspersed: false },
      );
      const req = buildCreate(p, false, {});
      const b = JSON.parse(JSON.stringify(req.body));
      assert.equal(b.Image, 'busybox');
      assert.deepEqual(b.Cmd, ['echo', 'hi']);
      assert.deepEqual(b.Env, ['FROM_FILE=1', 'A=1']);
      assert.deepEqual(b.Entrypoint, ['']);
      assert.equal(b.OpenStdin, true);
      assert.equal(b.StdinOnce, true);
      assert.deepEqual(req.attach, { stdin: true, stdout: true, stderr: true });
      assert.deepEqual(b.ExposedPorts, { '80/udp': {} });
      assert.deepEqual(b.Volumes, { '/data': {} });
      assert.deepEqual(b.Labels, { k: 'v' });
      assert.deepEqual(b.HostConfig.PortBindings, { '80/udp': [{ HostIp: '127.0.0.1', HostPort: '8080' }] });
      assert.equal(b.HostConfig.Memory, 512 * 1024 * 1024);
      assert.equal(b.HostConfig.NanoCpus, 1_500_000_000);
      assert.equal(b.HostConfig.AutoRemove, true);
      assert.deepEqual(b.HostConfig.Binds, ['/h:/c:ro']);
      assert.deepEqual(b.HostConfig.RestartPolicy, { Name: 'on-failure', MaximumRetryCount: 3 });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('templates', () => {
  const data = {
    Name: '/web',
    State: { Status: 'running', Pid: 42, Running: true },
    Config: { Labels: { 'com.x': 'y' }, Env: ['A=1', 'B=2'], Cmd: null },
    Mounts: [{ Destination: '/a' }, { Destination: '/b' }],
  };
  const run = (t: string, d: unknown = data) => Template.compile(t).execute(d);

  test('fields, functions, pipelines', () => {
    assert.equal(run('{{.State.Status}} {{.State.Pid}}'), 'running 42');
    assert.equal(run('{{json .State}}'), '{"Status":"running","Pid":42,"Running":true}');
    assert.equal(run('{{index .Config.Labels "com.x"}}'), 'y');
    assert.equal(run('{{join .Config.Env ","}}'), 'A=1,B=2');
    assert.equal(run('{{upper .State.Status}}|{{.Name | lower}}'), 'RUNNING|/web');
    assert.equal(run('{{printf "%s:%d" .State.Status .State.Pid}}'), 'running:42');
    assert.equal(run('{{.Config.Env}}'), '[A=1 B=2]');
    assert.equal(run('{{len .Mounts}}'), '2');
  });

  test('if/else, range, variables, trim markers', () => {
    assert.equal(run('{{if .State.Running}}up{{else}}down{{end}}'), 'up');
    assert.equal(run('{{if eq .State.Status "exited"}}x{{else if eq .State.Status "running"}}r{{else}}?{{end}}'), 'r');
    assert.equal(run('{{range .Mounts}}{{.Destination}};{{end}}'), '/a;/b;');
    assert.equal(run('{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}{{end}}'), 'com.x=y');
    assert.equal(run('{{range .Config.Cmd}}x{{else}}none{{end}}'), 'none');
    assert.equal(run('a  {{- .State.Pid -}}  b'), 'a42b');
    assert.equal(run('{{(index .Mounts 1).Destination}}'), '/b');
  });

  test('unknown fields are errors, as with missingkey=error', () => {
    assert.throws(() => run('{{.Nope}}'), (e: Error) => e instanceof TemplateError && e.message === 'template: :1:2: executing "" at <.Nope>: map has no entry for key "Nope"');
    assert.throws(() => Template.compile('{{nofunc .X}}'), /function "nofunc" not defined/);
    assert.throws(() => Template.compile('{{if .X}}'), TemplateError);
  });
});

describe('formatting', () => {
  test('human durations like go-units', () => {
    assert.equal(humanDuration(500), 'Less than a second');
    assert.equal(humanDuration(1000), '1 second');
    assert.equal(humanDuration(59_000), '59 seconds');
    assert.equal(humanDuration(60_000), 'About a minute');
    assert.equal(humanDuration(125_000), '2 minutes');
    assert.equal(humanDuration(3_600_000), 'About an hour');
    assert.equal(humanDuration(3 * 86_400_000), '3 days');
    assert.equal(humanDuration(20 * 86_400_000), '2 weeks');
    assert.equal(humanDuration(90 * 86_400_000), '3 months');
    assert.equal(humanDuration(800 * 86_400_000), '2 years');
  });

  test('human sizes like go-units (Go %g rounding)', () => {
    assert.equal(humanSize(4261550, 3), '4.26MB');
    assert.equal(humanSize(1234, 3), '1.23kB');
    assert.equal(humanSize(0, 3), '0B');
    assert.equal(humanSize(999999999, 3), '1e+03MB');
    assert.equal(bytesSize(16777216000), '15.62GiB');
    assert.equal(ramInBytes('512m'), 536870912);
    assert.equal(ramInBytes('1g'), 1073741824);
    assert.equal(ramInBytes('100'), 100);
    assert.throws(() => ramInBytes('12x'));
  });

  test('tabwriter layout: minwidth 10, padding 3, last column unpadded', () => {
    assert.equal(tabwrite(['CONTAINER ID\tIMAGE\tNAMES', 'abc\tbusybox:latest\tx']), 'CONTAINER ID   IMAGE            NAMES\nabc            busybox:latest   x\n');
    assert.equal(ellipsis('sh -c "while true; do echo"', 20), 'sh -c "while true; …');
  });

  test('ps and images rows', () => {
    const now = Date.now();
    const row = containerRow({ Id: 'a'.repeat(64), Names: ['/web'], Image: 'busybox', Command: 'sleep 1000', Created: now / 1000 - 120, Status: 'Up 2 minutes', Ports: [] }, true, now);
    assert.equal(row.ID, 'aaaaaaaaaaaa');
    assert.equal(row.Command, '"sleep 1000"');
    assert.equal(row.RunningFor, '2 minutes ago');
    assert.equal(
      displayPorts([
        { IP: '0.0.0.0', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' },
        { PrivatePort: 443, Type: 'tcp' },
        { PrivatePort: 444, Type: 'tcp' },
      ]),
      '443-444/tcp, 0.0.0.0:8080->80/tcp',
    );
    const rows = imageRows([{ Id: 'sha256:' + 'b'.repeat(64), RepoTags: [], RepoDigests: [], Created: now / 1000 - 30, Size: 1234 }], true, now);
    assert.deepEqual([rows[0].Repository, rows[0].Tag, rows[0].ID, rows[0].Size], ['<none>', '<none>', 'bbbbbbbbbbbb', '1.23kB']);
  });

  test('demux of multiplexed frames, split across chunks', async () => {
    const out = new PassThrough();
    const err = new PassThrough();
    const d = new Demuxer(out, err);
    const frame = (k: number, s: string) => Buffer.concat([Buffer.from([k, 0, 0, 0]), Buffer.from([0, 0, 0, Buffer.byteLength(s)]), Buffer.from(s)]);
    const all = Buffer.concat([frame(1, 'hello '), frame(2, 'oops\n'), frame(1, 'world\n')]);
    for (let i = 0; i < all.length; i += 5) d.write(all.subarray(i, i + 5));
    await new Promise<void>((r) => d.end(r));
    assert.equal(out.read()?.toString(), 'hello world\n');
    assert.equal(err.read()?.toString(), 'oops\n');
  });
});

// ---- command flows against a fake Engine API on a unix socket ----

interface Seen {
  method: string;
  path: string;
  query: URLSearchParams;
  body: string;
}

class FakeDaemon {
  seen: Seen[] = [];
  server: http.Server;
  sock: string;
  dir: string;
  handlers: Array<(s: Seen, res: http.ServerResponse) => boolean> = [];
  attachSocket?: net.Socket;
  onStart?: () => void;
  stdinReceived = '';
  stdinEnded!: Promise<void>;

  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cli-'));
    this.sock = path.join(this.dir, 'api.sock');
    this.server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        const u = new URL(req.url ?? '/', 'http://x');
        const s: Seen = { method: req.method ?? '', path: u.pathname.replace(/^\/v[\d.]+/, ''), query: u.searchParams, body };
        this.seen.push(s);
        for (const h of this.handlers) if (h(s, res)) return;
        res.writeHead(404, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ message: `page not found: ${s.path}` }));
      });
    });
    this.server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
      const u = new URL(req.url ?? '/', 'http://x');
      this.seen.push({ method: req.method ?? '', path: u.pathname.replace(/^\/v[\d.]+/, ''), query: u.searchParams, body: '' });
      socket.write('HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
      this.attachSocket = socket;
      this.stdinEnded = new Promise((resolve) => {
        socket.on('data', (d) => (this.stdinReceived += d.toString()));
        socket.on('end', () => resolve());
      });
    });
  }
  listen(): Promise<void> {
    return new Promise((r) => this.server.listen(this.sock, r));
  }
  close(): Promise<void> {
    this.attachSocket?.destroy();
    this.server.closeAllConnections();
    return new Promise((r) =>
      this.server.close(() => {
        fs.rmSync(this.dir, { recursive: true, force: true });
        r();
      }),
    );
  }
  on(method: string, re: RegExp, fn: (s: Seen, res: http.ServerResponse) => void): void {
    this.handlers.push((s, res) => {
      if (s.method !== method || !re.test(s.path)) return false;
      fn(s, res);
      return true;
    });
  }
  json(method: string, re: RegExp, status: number, body: unknown): void {
    this.on(method, re, (_s, res) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    });
  }
}

const frame = (k: number, s: string) => Buffer.concat([Buffer.from([k, 0, 0, 0]), Buffer.from([0, 0, 0, Buffer.byteLength(s)]), Buffer.from(s)]);

async function berth(d: FakeDaemon, argv: string[], stdinData?: string): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let o = '';
  let e = '';
  out.on('data', (x) => (o += x));
  err.on('data', (x) => (e += x));
  const stdin = new PassThrough();
  if (stdinData !== undefined) stdin.end(stdinData);
  const code = await main(['-H', `unix://${d.sock}`, ...argv], { out, err, stdin, env: {} });
  return { code, out: o, err: e };
}

describe('command flows (fake daemon)', () => {
  let d: FakeDaemon;
  before(async () => {
    d = new FakeDaemon();
    await d.listen();
  });
  after(async () => {
    await d.close();
  });
  const reset = () => {
    d.seen = [];
    d.handlers = [];
  };
  const ID = 'f'.repeat(64);

  /** create → attach → wait → start; the container writes to both streams and exits 3. */
  function runScript(opts: { createFailsOnce?: boolean } = {}) {
    let created = 0;
    d.on('POST', /^\/containers\/create$/, (_s, res) => {
      created++;
      if (opts.createFailsOnce && created === 1) {
        res.writeHead(404, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ message: 'No such image: busybox:latest' }));
        return;
      }
      res.writeHead(201, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ Id: ID, Warnings: [] }));
    });
    d.on('POST', /^\/images\/create$/, (_s, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write(JSON.stringify({ status: 'Pulling from library/busybox', id: 'latest' }) + '\n');
      res.write(JSON.stringify({ status: 'Downloading', id: 'abc', progressDetail: { current: 5, total: 10 }, progress: '[==> ]' }) + '\n');
      res.end(JSON.stringify({ status: 'Status: Downloaded newer image for busybox:latest' }) + '\n');
    });
    let waitRes: http.ServerResponse | undefined;
    d.on('POST', /\/wait$/, (_s, res) => {
      waitRes = res;
    });
    d.on('POST', /\/start$/, (_s, res) => {
      res.writeHead(204);
      res.end();
      const sock = d.attachSocket as net.Socket;
      sock.write(Buffer.concat([frame(1, 'out line\n'), frame(2, 'err line\n')]));
      // Exit after the container has seen stdin EOF (if it was attached) or right away.
      setTimeout(() => {
        sock.end();
        waitRes?.writeHead(200, { 'Content-Type': 'application/json' });
        waitRes?.end(JSON.stringify({ StatusCode: 3, Error: null }));
      }, 20);
    });
  }

  test('run: create, attach, wait, start, exit with the container status', async () => {
    reset();
    runScript();
    const r = await berth(d, ['run', '--rm', 'busybox', 'sh', '-c', 'exit 3']);
    assert.equal(r.code, 3);
    assert.equal(r.out, 'out line\n');
    assert.equal(r.err, 'err line\n');
    const order = d.seen.map((s) => `${s.method} ${s.path}`);
    assert.deepEqual(order, ['POST /containers/create', `POST /containers/${ID}/attach`, `POST /containers/${ID}/wait`, `POST /containers/${ID}/start`]);
    assert.equal(d.seen[2].query.get('condition'), 'removed');
    assert.equal(d.seen[1].query.get('stdout'), '1');
    const body = JSON.parse(d.seen[0].body);
    assert.deepEqual(body.Cmd, ['sh', '-c', 'exit 3']);
    assert.equal(body.HostConfig.AutoRemove, true);
  });

  test('run -i: stdin is piped into the container and half-closed at EOF', async () => {
    reset();
    runScript();
    const r = await berth(d, ['run', '-i', 'busybox', 'cat'], 'piped input\n');
    await d.stdinEnded;
    assert.equal(d.stdinReceived, 'piped input\n');
    assert.equal(r.code, 3);
    assert.equal(d.seen.find((s) => s.path.endsWith('/attach'))?.query.get('stdin'), '1');
    assert.equal(d.seen.find((s) => s.path.endsWith('/wait'))?.query.get('condition'), 'next-exit');
  });

  test('run: a missing image is pulled, then created again', async () => {
    reset();
    runScript({ createFailsOnce: true });
    const r = await berth(d, ['run', 'busybox']);
    assert.equal(r.code, 3);
    assert.match(r.err, /^Unable to find image 'busybox:latest' locally\nlatest: Pulling from library\/busybox\nStatus: Downloaded newer image for busybox:latest\n/);
    const pull = d.seen.find((s) => s.path === '/images/create');
    assert.equal(pull?.query.get('fromImage'), 'docker.io/library/busybox');
    assert.equal(pull?.query.get('tag'), 'latest');
    assert.equal(d.seen.filter((s) => s.path === '/containers/create').length, 2);
  });

  test('run -d prints the full ID and does not attach', async () => {
    reset();
    d.json('POST', /^\/containers\/create$/, 201, { Id: ID, Warnings: null });
    d.on('POST', /\/start$/, (_s, res) => {
      res.writeHead(204);
      res.end();
    });
    const r = await berth(d, ['run', '-d', 'busybox', 'sleep', '1']);
    assert.equal(r.code, 0);
    assert.equal(r.out, `${ID}\n`);
    assert.deepEqual(
      d.seen.map((s) => s.path),
      ['/containers/create', `/containers/${ID}/start`],
    );
  });

  test('run: start errors map to 127 / 126 / 125', async () => {
    for (const [msg, code] of [
      ['failed to create task: exec: "nope": executable file not found in $PATH', 127],
      ['exec /etc/passwd: permission denied', 126],
      ['cgroup setup failed', 125],
    ] as const) {
      reset();
      d.json('POST', /^\/containers\/create$/, 201, { Id: ID });
      d.json('POST', /\/start$/, 400, { message: msg });
      d.json('POST', /\/wait$/, 200, { StatusCode: 0 });
      d.on('POST', /\/attach$/, (_s, res) => {
        res.writeHead(200);
        res.end();
      });
      const r = await berth(d, ['run', '-d', 'busybox', 'nope']);
      assert.equal(r.code, code, msg);
      assert.equal(r.err, `berth: Error response from daemon: ${msg}\n\nRun 'berth run --help' for more information\n`);
    }
  });

  test('unknown flag → usage error, exit 125', async () => {
    reset();
    const r = await berth(d, ['run', '--x', 'busybox']);
    assert.equal(r.code, 125);
    assert.equal(r.err, "unknown flag: --x\n\nUsage:  berth run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'berth run --help' for more information\n");
    assert.equal(d.seen.length, 0);
  });

  test('rm: each container is tried, errors reported at the end with exit 1', async () => {
    reset();
    d.on('DELETE', /^\/containers\/ok$/, (_s, res) => {
      res.writeHead(204);
      res.end();
    });
    d.json('DELETE', /^\/containers\/nope$/, 404, { message: 'No such container: nope' });
    const r = await berth(d, ['rm', 'nope', 'ok', '-f']);
    assert.equal(r.code, 0, 'rm -f ignores missing containers');
    assert.equal(r.out, 'ok\n');
    const r2 = await berth(d, ['container', 'rm', 'nope', 'ok']);
    assert.equal(r2.code, 1);
    assert.equal(r2.out, 'ok\n');
    assert.equal(r2.err, 'Error response from daemon: No such container: nope\n');
    assert.equal(d.seen.find((s) => s.path === '/containers/ok')?.query.get('force'), '1');
  });

  test('ps: docker columns and --format', async () => {
    reset();
    const created = Math.floor(Date.now() / 1000) - 125;
    d.json('GET', /^\/containers\/json$/, 200, [
      { Id: 'a'.repeat(64), Names: ['/web'], Image: 'busybox', ImageID: 'sha256:' + 'b'.repeat(64), Command: 'sleep 1000', Created: created, Ports: [], State: 'running', Status: 'Up 2 minutes' },
    ]);
    const r = await berth(d, ['ps', '-a']);
    assert.equal(r.code, 0);
    assert.equal(
      r.out,
      'CONTAINER ID   IMAGE     COMMAND        CREATED         STATUS         PORTS     NAMES\n' +
        'aaaaaaaaaaaa   busybox   "sleep 1000"   2 minutes ago   Up 2 minutes             web\n',
    );
    assert.equal(d.seen[0].query.get('all'), '1');
    const f = await berth(d, ['container', 'ls', '--format', '{{.Names}}\\t{{.State}}']);
    assert.equal(f.out, 'web\trunning\n');
    const j = await berth(d, ['ps', '--format', 'json']);
    assert.equal(JSON.parse(j.out).Names, 'web');
  });

  test('logs: inspects for Tty, then demultiplexes', async () => {
    reset();
    d.json('GET', /^\/containers\/web\/json$/, 200, { Id: ID, Config: { Tty: false } });
    d.on('GET', /^\/containers\/web\/logs$/, (_s, res) => {
      res.writeHead(200, { 'Content-Type': 'application/vnd.docker.multiplexed-stream' });
      res.end(Buffer.concat([frame(1, 'a\n'), frame(2, 'b\n')]));
    });
    const r = await berth(d, ['logs', '--tail', '5', '-t', 'web']);
    assert.equal(r.code, 0);
    assert.equal(r.out, 'a\n');
    assert.equal(r.err, 'b\n');
    const q = d.seen[1].query;
    assert.equal(q.get('tail'), '5');
    assert.equal(q.get('timestamps'), '1');
  });

  test('import streams the tar body and prints the image id', async () => {
    reset();
    let got = '';
    let type = '';
    d.on('POST', /^\/images\/create$/, (s, res) => {
      got = s.body;
      type = s.query.get('fromSrc') ?? '';
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ status: 'sha256:' + 'c'.repeat(64) }) + '\n');
    });
    const r = await berth(d, ['import', '-c', 'CMD ["sh"]', '-m', 'msg', '-', 'my/img:v1'], 'TARDATA');
    assert.equal(r.code, 0);
    assert.equal(r.out, `sha256:${'c'.repeat(64)}\n`);
    assert.equal(got, 'TARDATA');
    assert.equal(type, '-');
    const q = d.seen[0].query;
    assert.deepEqual([q.get('repo'), q.get('tag'), q.get('message'), q.getAll('changes')], ['my/img', 'v1', 'msg', ['CMD ["sh"]']]);
  });

  test('rmi prints Untagged/Deleted lines; inspect -f formats', async () => {
    reset();
    d.json('DELETE', /^\/images\/busybox$/, 200, [{ Untagged: 'busybox:latest' }, { Deleted: 'sha256:' + 'b'.repeat(64) }]);
    d.json('GET', /^\/containers\/web\/json$/, 200, { Id: ID, State: { Status: 'exited', ExitCode: 3 } });
    d.json('GET', /^\/containers\/nope\/json$/, 404, { message: 'No such container: nope' });
    d.json('GET', /^\/images\/nope\/json$/, 404, { message: 'No such image: nope' });
    const r = await berth(d, ['rmi', 'busybox']);
    assert.equal(r.out, `Untagged: busybox:latest\nDeleted: sha256:${'b'.repeat(64)}\n`);
    const i = await berth(d, ['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', 'web']);
    assert.equal(i.out, 'exited 3\n');
    const n = await berth(d, ['inspect', 'nope']);
    assert.equal(n.code, 1);
    assert.equal(n.out, '[]\n');
    assert.equal(n.err, 'Error: No such object: nope\n');
  });

  test('an unreachable daemon gives docker\'s message and exit 1', async () => {
    const out = new PassThrough();
    const err = new PassThrough();
    let e = '';
    err.on('data', (x) => (e += x));
    const code = await main(['ps'], { out, err, stdin: new PassThrough(), env: { BERTH_HOST: 'unix:///nonexistent/berth.sock' } });
    assert.equal(code, 1);
    assert.equal(e, 'Cannot connect to the berth daemon at unix:///nonexistent/berth.sock. Is the berth daemon running?\n');
  });
});
