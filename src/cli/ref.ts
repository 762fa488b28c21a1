/**
 * Image references for the CLI: the same grammar and normalisation as the
 * daemon ("busybox" is docker.io/library/busybox), without a default tag.
 */
import { type Reference, parseNormalizedNamed, repositoryName, familiarName, familiarString } from '../image/reference.js';

export type ImageRef = Reference;
export const parseRef = parseNormalizedNamed;
export { familiarName };

/** "docker.io/library/busybox" */
export const fullName = repositoryName;

/** Familiar string with ":latest" added when neither tag nor digest was given. */
export function familiarTagged(r: ImageRef): string {
  return familiarString(r.tag || r.digest ? r : { ...r, tag: 'latest' });
}
