import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseReference, formatReference, familiarName, familiarString, parseNormalizedNamed } from '../../src/image/reference.js';
import { InvalidParameter } from '../../src/errors.js';

const D = 'sha256:' + 'ab'.repeat(32);

// input, full form, familiar name, familiar string
const good: [string, string, string, string][] = [
  ['busybox', 'docker.io/library/busybox:latest', 'busybox', 'busybox:latest'],
  ['busybox:1.36', 'docker.io/library/busybox:1.36', 'busybox', 'busybox:1.36'],
  ['library/busybox', 'docker.io/library/busybox:latest', 'busybox', 'busybox:latest'],
  ['docker.io/library/busybox:latest', 'docker.io/library/busybox:latest', 'busybox', 'busybox:latest'],
  ['index.docker.io/busybox', 'docker.io/library/busybox:latest', 'busybox', 'busybox:latest'],
  ['user/x', 'docker.io/user/x:latest', 'user/x', 'user/x:latest'],
  ['docker.io/library/a/b', 'docker.io/library/a/b:latest', 'library/a/b', 'library/a/b:latest'],
  ['localhost/x', 'localhost/x:latest', 'localhost/x', 'localhost/x:latest'],
  ['localhost:5000/x', 'localhost:5000/x:latest', 'localhost:5000/x', 'localhost:5000/x:latest'],
  ['localhost:5000/a/b:tag', 'localhost:5000/a/b:tag', 'localhost:5000/a/b', 'localhost:5000/a/b:tag'],
  [`localhost:5000/x@${D}`, `localhost:5000/x@${D}`, 'localhost:5000/x', `localhost:5000/x@${D}`],
  [`busybox:1@${D}`, `docker.io/library/busybox:1@${D}`, 'busybox', `busybox:1@${D}`],
  ['quay.io/a-b/c__d.e:v1.0_rc-2', 'quay.io/a-b/c__d.e:v1.0_rc-2', 'quay.io/a-b/c__d.e', 'quay.io/a-b/c__d.e:v1.0_rc-2'],
  ['Example.COM/x', 'Example.COM/x:latest', 'Example.COM/x', 'Example.COM/x:latest'],
  ['127.0.0.1:5000/x', '127.0.0.1:5000/x:latest', '127.0.0.1:5000/x', '127.0.0.1:5000/x:latest'],
  ['[::1]:5000/x', '[::1]:5000/x:latest', '[::1]:5000/x', '[::1]:5000/x:latest'],
  ['a---b', 'docker.io/library/a---b:latest', 'a---b', 'a---b:latest'],
];

test('good references parse, normalise and print back', () => {
  for (const [input, full, name, str] of good) {
    const r = parseReference(input);
    assert.equal(formatReference(r), full, input);
    assert.equal(familiarName(r), name, input);
    assert.equal(familiarString(r), str, input);
    assert.deepEqual(parseReference(formatReference(r)), r, `round trip ${input}`);
  }
});

test('busybox parses into its parts', () => {
  assert.deepEqual(parseReference('busybox'), { domain: 'docker.io', path: 'library/busybox', tag: 'latest' });
  assert.deepEqual(parseReference(`busybox@${D}`), { domain: 'docker.io', path: 'library/busybox', digest: D });
  assert.deepEqual(parseNormalizedNamed('busybox'), { domain: 'docker.io', path: 'library/busybox' });
});

const bad: [string, string][] = [
  ['', 'invalid reference format: repository name must have at least one component'],
  [':tag', 'invalid reference format'],
  ['a//b', 'invalid reference format'],
  ['a/', 'invalid reference format'],
  ['/a', 'invalid reference format'],
  ['a:b:c', 'invalid reference format'],
  ['a@sha256:abc', 'invalid reference format'],
  ['a:' + 'x'.repeat(129), 'invalid reference format'],
  ['-a', 'invalid reference format'],
  ['a_-b', 'invalid reference format'],
  ['a___b', 'invalid reference format'],
  ['a b', 'invalid reference format'],
  ['localhost:port/x', 'invalid reference format'],
  ['Foo', 'invalid reference format: repository name (library/Foo) must be lowercase'],
  ['user/Foo:tag', 'invalid reference format: repository name (user/Foo) must be lowercase'],
  ['localhost:5000/Up', 'invalid reference format: repository name (Up) must be lowercase'],
  ['a'.repeat(64).replace(/a/g, 'b'), `invalid repository name (${'b'.repeat(64)}), cannot specify 64-byte hexadecimal strings`],
  [`a@sha256:${'a'.repeat(40)}`, 'invalid checksum digest length'],
  [`a@md5:${'a'.repeat(32)}`, 'unsupported digest algorithm'],
  [`a@sha256:${'A'.repeat(64)}`, 'invalid checksum digest format'],
  ['x/' + 'a'.repeat(260), 'invalid reference format: repository name must not be more than 255 characters'],
];

test('bad references are rejected with docker messages', () => {
  for (const [input, message] of bad) {
    assert.throws(() => parseReference(input), (e: unknown) => {
      assert.ok(e instanceof InvalidParameter, `${input}: ${String(e)}`);
      assert.equal(e.message, message, input);
      return true;
    });
  }
});
