/**
 * Basic auth from an htpasswd file with bcrypt entries (`htpasswd -B`). The file is
 * re-read when its mtime changes. bcrypt is slow on purpose (tens of ms per check),
 * so a credential pair already proven against the same hash is remembered for the
 * life of the process; a changed password changes the hash and forgets it.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import bcrypt from 'bcryptjs';

export class Htpasswd {
  private users = new Map<string, string>();
  private mtimeMs = -1;
  private proven = new Map<string, string>();

  constructor(readonly file: string) {
    this.reload();
  }

  private reload(): void {
    const st = fs.statSync(this.file);
    if (st.mtimeMs === this.mtimeMs) return;
    const users = new Map<string, string>();
    for (const raw of fs.readFileSync(this.file, 'utf8').split('\n')) {
      const line = raw.trim();
      if (!line || line.startsWith('#')) continue;
      const i = line.indexOf(':');
      if (i <= 0) continue;
      const hash = line.slice(i + 1);
      // Only bcrypt is accepted; $2y$ (Apache's spelling) is the same algorithm as $2b$.
      if (/^\$2[aby]\$/.test(hash)) users.set(line.slice(0, i), hash.replace(/^\$2y\$/, '$2b$'));
    }
    this.users = users;
    this.mtimeMs = st.mtimeMs;
  }

  /** The user name when the Authorization header carries valid Basic credentials, else undefined. */
  async verify(authorization: string | undefined): Promise<string | undefined> {
    const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization ?? '');
    if (!m) return undefined;
    const decoded = Buffer.from(m[1], 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i < 0) return undefined;
    const user = decoded.slice(0, i);
    const pass = decoded.slice(i + 1);
    try {
      this.reload();
    } catch {}
    const hash = this.users.get(user);
    if (!hash) return undefined;
    const key = createHash('sha256').update(`${user}\0${pass}`).digest('hex');
    if (this.proven.get(key) === hash) return user;
    if (!(await bcrypt.compare(pass, hash))) return undefined;
    this.proven.set(key, hash);
    return user;
  }
}
