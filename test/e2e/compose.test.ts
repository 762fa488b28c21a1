/**
 * docker-compose (Debian's 1.29.2, a Python client of the Engine API through docker-py) against
 * berthd: a project that builds an image, publishes a port, gives its services a network of their
 * own where they find each other by name, keeps data in a named volume, runs with --init and a
 * health check; then `down -v --rmi local` leaves no container, network, volume, image, rule or
 * mount behind.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startDaemon, loadTestImages, leftovers, daemonRules, printLogTail, run, type Daemon } from '../harness.js';

let d: Daemon;
let project: string;

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
  project = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-compose-test-'));
  fs.mkdirSync(path.join(project, 'web'));
  fs.writeFileSync(path.join(project, 'web', 'index.html'), 'served by a built image\n');
  fs.writeFileSync(
    path.join(project, 'web', 'Dockerfile'),
    'FROM busybox\nCOPY index.html /www/index.html\nEXPOSE 8080\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n',
  );
  fs.writeFileSync(
    path.join(project, 'docker-compose.yml'),
    `version: "3.8"
services:
  web:
    build: ./web
    ports: ["127.0.0.1::8080"]
    networks: [front]
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://127.0.0.1:8080/"]
      interval: 1s
      retries: 30
  store:
    image: busybox
    init: true
    command: ["sh", "-c", "hostname > /data/who && exec sleep 300"]
    volumes: ["data:/data"]
    networks: [front]
    depends_on: [web]
networks:
  front: {}
volumes:
  data: {}
`,
  );
});

after(async () => {
  await d?.stop();
  if (project) fs.rmSync(project, { recursive: true, force: true });
});

async function compose(args: string[], timeoutMs = 120_000): Promise<string> {
  const env = { ...d.env, COMPOSE_PROJECT_NAME: 'shop' };
  const r = await run('docker-compose', args, { env, cwd: project, timeoutMs });
  if (r.code !== 0) printLogTail(d, `docker-compose ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  assert.equal(r.code, 0, `docker-compose ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

async function docker(args: string[]): Promise<string> {
  const r = await d.docker(args);
  assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

test('docker-compose up builds, networks, publishes and stores; down -v leaves nothing', { timeout: 240_000 }, async () => {
  await compose(['up', '-d', '--build']);
  const ps = await compose(['ps']);
  assert.match(ps, /^shop_web_1 .* Up .*127\.0\.0\.1:\d+->8080\/tcp/m, ps);
  assert.match(ps, /^shop_store_1 .* Up/m, ps);

  // The published port, from the host's loopback.
  const port = (await compose(['port', 'web', '8080'])).trim();
  assert.match(port, /^127\.0\.0\.1:\d+$/);
  const page = await run('curl', ['-sf', `http://${port}/`]);
  assert.equal(page.stdout, 'served by a built image\n', page.stderr);

  // Services find each other by name on the project's network.
  assert.equal(await compose(['exec', '-T', 'store', 'wget', '-qO-', 'http://web:8080/']), 'served by a built image\n');
  const nets = JSON.parse(await docker(['inspect', 'shop_store_1']))[0].NetworkSettings.Networks;
  assert.deepEqual(Object.keys(nets), ['shop_front']);
  assert.ok(nets.shop_front.Aliases.includes('store'), JSON.stringify(nets.shop_front.Aliases));

  // --init puts tini at pid 1; the health check turns healthy.
  assert.match(await compose(['exec', '-T', 'store', 'cat', '/proc/1/cmdline']), /init|tini/);
  let health = '';
  for (let i = 0; i < 60 && health !== 'healthy'; i++) {
    health = (await docker(['inspect', '-f', '{{.State.Health.Status}}', 'shop_web_1'])).trim();
    if (health !== 'healthy') await new Promise((r) => setTimeout(r, 500));
  }
  assert.equal(health, 'healthy');

  // The volume outlives the container that wrote it: a one-off `run` reads what `store` wrote.
  const who = (await compose(['exec', '-T', 'store', 'hostname'])).trim();
  assert.equal((await compose(['run', '--rm', '-T', 'store', 'cat', '/data/who'])).trim(), who);
  await compose(['restart', 'store']);
  assert.equal((await compose(['exec', '-T', 'store', 'cat', '/data/who'])).trim(), who, 'the restarted container sees the same volume');

  await compose(['down', '-v', '--rmi', 'local']);
  assert.equal(await docker(['ps', '-aq']), '');
  assert.equal(await docker(['network', 'ls', '-q', '--filter', 'name=shop_']), '');
  assert.equal(await docker(['volume', 'ls', '-q']), '');
  assert.equal((await d.docker(['image', 'inspect', 'shop_web'])).code, 1, 'down --rmi local removed the image it built');
  assert.equal((await d.docker(['image', 'inspect', 'busybox'])).code, 0, '--rmi local keeps images it did not build');
  assert.ok(daemonRules(d.bridge!).every((r) => !r.includes('br-')), daemonRules(d.bridge!).join('\n'));
  assert.deepEqual(leftovers(d), { mounts: [], cgroups: [], processes: [], files: [] });
});
