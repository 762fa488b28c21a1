/**
 * Networks, attachments (a container's membership of a network, with its live endpoint and lease)
 * and sandboxes in the daemon's SQLite database. A lease is the ip column of a live attachment,
 * unique per network, so two containers can never hold one address even across a kill -9; each
 * change is one statement. Reads of networks come from memory.
 */
import type { Database } from 'better-sqlite3';
import type { Attachment, NetworkRecord, Sandbox } from './types.js';

export class NetworkStore {
  private readonly byId = new Map<string, NetworkRecord>();

  constructor(private readonly db: Database) {
    db.exec(`CREATE TABLE IF NOT EXISTS networks (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, record TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS net_attachments (
        container_id TEXT NOT NULL, network_id TEXT NOT NULL, ip TEXT, record TEXT NOT NULL,
        PRIMARY KEY (container_id, network_id), UNIQUE (network_id, ip));
      CREATE TABLE IF NOT EXISTS net_sandboxes (container_id TEXT PRIMARY KEY, record TEXT NOT NULL);`);
    for (const row of db.prepare('SELECT record FROM networks').all() as { record: string }[]) {
      const n = JSON.parse(row.record) as NetworkRecord;
      this.byId.set(n.id, n);
    }
  }

  networks(): NetworkRecord[] {
    return [...this.byId.values()];
  }

  network(id: string): NetworkRecord | undefined {
    return this.byId.get(id);
  }

  saveNetwork(n: NetworkRecord): void {
    this.db.prepare('INSERT INTO networks (id, name, record) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET name = excluded.name, record = excluded.record').run(n.id, n.name, JSON.stringify(n));
    this.byId.set(n.id, n);
  }

  deleteNetwork(id: string): void {
    this.db.prepare('DELETE FROM networks WHERE id = ?').run(id);
    this.byId.delete(id);
  }

  private rows(sql: string, ...args: string[]): Attachment[] {
    return (this.db.prepare(sql).all(...args) as { record: string }[]).map((r) => JSON.parse(r.record) as Attachment);
  }

  attachmentsOf(containerId: string): Attachment[] {
    return this.rows('SELECT record FROM net_attachments WHERE container_id = ? ORDER BY rowid', containerId);
  }

  attachmentsOn(networkId: string): Attachment[] {
    return this.rows('SELECT record FROM net_attachments WHERE network_id = ? ORDER BY rowid', networkId);
  }

  allAttachments(): Attachment[] {
    return this.rows('SELECT record FROM net_attachments ORDER BY rowid');
  }

  /** Addresses leased on a network. */
  leases(networkId: string): string[] {
    return (this.db.prepare('SELECT ip FROM net_attachments WHERE network_id = ? AND ip IS NOT NULL').all(networkId) as { ip: string }[]).map((r) => r.ip);
  }

  /** Insert or update; throws SQLITE_CONSTRAINT_UNIQUE if the lease is taken. */
  saveAttachment(a: Attachment): void {
    this.db.prepare('INSERT INTO net_attachments (container_id, network_id, ip, record) VALUES (?, ?, ?, ?) ON CONFLICT(container_id, network_id) DO UPDATE SET ip = excluded.ip, record = excluded.record')
      .run(a.containerId, a.networkId, a.live?.ip ?? null, JSON.stringify(a));
  }

  deleteAttachment(containerId: string, networkId: string): void {
    this.db.prepare('DELETE FROM net_attachments WHERE container_id = ? AND network_id = ?').run(containerId, networkId);
  }

  deleteAttachmentsOf(containerId: string): void {
    this.db.prepare('DELETE FROM net_attachments WHERE container_id = ?').run(containerId);
  }

  sandbox(containerId: string): Sandbox | undefined {
    const row = this.db.prepare('SELECT record FROM net_sandboxes WHERE container_id = ?').get(containerId) as { record: string } | undefined;
    return row ? (JSON.parse(row.record) as Sandbox) : undefined;
  }

  sandboxes(): Sandbox[] {
    return (this.db.prepare('SELECT record FROM net_sandboxes').all() as { record: string }[]).map((r) => JSON.parse(r.record) as Sandbox);
  }

  saveSandbox(s: Sandbox): void {
    this.db.prepare('INSERT INTO net_sandboxes (container_id, record) VALUES (?, ?) ON CONFLICT(container_id) DO UPDATE SET record = excluded.record').run(s.containerId, JSON.stringify(s));
  }

  deleteSandbox(containerId: string): void {
    this.db.prepare('DELETE FROM net_sandboxes WHERE container_id = ?').run(containerId);
  }
}
