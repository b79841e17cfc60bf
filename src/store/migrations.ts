/** Schema migrations, applied in order and never edited once released: add a new one instead. */
export const MIGRATIONS: ReadonlyArray<{ version: number; sql: string }> = [
  {
    version: 1,
    sql: `
      CREATE TABLE instances (
        name         TEXT PRIMARY KEY,
        uuid         TEXT NOT NULL UNIQUE,
        smbios_uuid  TEXT NOT NULL UNIQUE,
        state        TEXT NOT NULL,
        state_reason TEXT,
        spec         TEXT NOT NULL,
        pid          INTEGER,
        pid_start    TEXT,
        created_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL
      );
      CREATE TABLE nics (
        instance TEXT NOT NULL REFERENCES instances(name) ON DELETE CASCADE,
        idx      INTEGER NOT NULL,
        mac      TEXT NOT NULL UNIQUE,
        network  TEXT NOT NULL,
        PRIMARY KEY (instance, idx)
      );
      CREATE TABLE locks (
        name        TEXT PRIMARY KEY,
        pid         INTEGER NOT NULL,
        pid_start   TEXT NOT NULL,
        operation   TEXT NOT NULL,
        acquired_at TEXT NOT NULL
      );
    `,
  },
  {
    version: 2,
    sql: `
      CREATE TABLE images (
        name          TEXT PRIMARY KEY,
        sha256        TEXT NOT NULL,
        format        TEXT NOT NULL CHECK (format IN ('qcow2', 'raw')),
        virtual_size  INTEGER NOT NULL,
        file_size     INTEGER NOT NULL,
        source        TEXT NOT NULL,
        source_sha256 TEXT NOT NULL,
        verified_by   TEXT,
        created_at    TEXT NOT NULL
      );
      CREATE INDEX images_sha256 ON images (sha256);
    `,
  },
  {
    version: 3,
    sql: `
      CREATE TABLE networks (
        name       TEXT PRIMARY KEY,
        id         TEXT NOT NULL UNIQUE,
        spec       TEXT NOT NULL,
        created_at TEXT NOT NULL
      );
      ALTER TABLE nics ADD COLUMN address TEXT;
      ALTER TABLE nics ADD COLUMN static_address INTEGER NOT NULL DEFAULT 0;
    `,
  },
  {
    version: 4,
    sql: `
      CREATE TABLE pools (
        name       TEXT PRIMARY KEY,
        path       TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL
      );
      CREATE TABLE volumes (
        name       TEXT PRIMARY KEY,
        pool       TEXT NOT NULL REFERENCES pools(name),
        path       TEXT NOT NULL UNIQUE,
        format     TEXT NOT NULL CHECK (format IN ('qcow2', 'raw')),
        state      TEXT NOT NULL,
        created_at TEXT NOT NULL
      );
      CREATE TABLE snapshots (
        instance   TEXT NOT NULL REFERENCES instances(name) ON DELETE CASCADE,
        name       TEXT NOT NULL,
        kind       TEXT NOT NULL CHECK (kind IN ('internal', 'external')),
        memory     INTEGER NOT NULL,
        parent     TEXT,
        state      TEXT NOT NULL,
        is_current INTEGER NOT NULL DEFAULT 0,
        disks      TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (instance, name)
      );
    `,
  },
  {
    version: 5,
    sql: `
      CREATE TABLE templates (
        name         TEXT PRIMARY KEY,
        disk_path    TEXT NOT NULL UNIQUE,
        format       TEXT NOT NULL CHECK (format IN ('qcow2', 'raw')),
        virtual_size INTEGER NOT NULL,
        sha256       TEXT NOT NULL,
        source       TEXT NOT NULL,
        seal_method  TEXT NOT NULL CHECK (seal_method IN ('guest-agent', 'offline')),
        details      TEXT NOT NULL,
        created_at   TEXT NOT NULL
      );
    `,
  },
  {
    // The daemon: per-instance autostart and restart policy, and API tokens (only their sha256 is kept).
    version: 6,
    sql: `
      CREATE TABLE instance_policies (
        instance       TEXT PRIMARY KEY REFERENCES instances(name) ON DELETE CASCADE,
        autostart      INTEGER NOT NULL DEFAULT 0 CHECK (autostart IN (0, 1)),
        restart_policy TEXT NOT NULL DEFAULT 'no' CHECK (restart_policy IN ('no', 'on-failure', 'always'))
      );
      CREATE TABLE api_tokens (
        name         TEXT PRIMARY KEY,
        sha256       TEXT NOT NULL UNIQUE,
        created_at   TEXT NOT NULL,
        last_used_at TEXT
      );
    `,
  },
  {
    // Operations of the daemon outlive it: progress and outcome are kept as they happen; `owner_pid`/`owner_start`
    // name the daemon that runs a `running` one, so the next daemon can tell it was interrupted.
    version: 7,
    sql: `
      CREATE TABLE operations (
        id          TEXT PRIMARY KEY,
        kind        TEXT NOT NULL,
        target      TEXT,
        status      TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
        progress    TEXT NOT NULL,
        result      TEXT,
        error       TEXT,
        owner_pid   INTEGER NOT NULL,
        owner_start TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        finished_at TEXT
      );
      CREATE INDEX operations_created ON operations (created_at);
      CREATE INDEX operations_status ON operations (status, created_at);
    `,
  },
  {
    // Tokens that end, and tokens that may only read (GET), for dashboards and monitoring.
    version: 8,
    sql: `
      ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'admin' CHECK (scope IN ('admin', 'read-only'));
      ALTER TABLE api_tokens ADD COLUMN expires_at TEXT;
    `,
  },
  {
    // Who asked for each operation (the operations log shows it).
    version: 9,
    sql: `ALTER TABLE operations ADD COLUMN started_by TEXT;`,
  },
  {
    // `virtnode apply`: which stack manages an object, whether the stack made it (only those are pruned), and
    // what of its document is not visible in the object itself (the user-data it was launched with).
    version: 10,
    sql: `
      CREATE TABLE stack_objects (
        kind       TEXT NOT NULL,
        name       TEXT NOT NULL,
        stack      TEXT NOT NULL,
        created    INTEGER NOT NULL CHECK (created IN (0, 1)),
        details    TEXT NOT NULL DEFAULT '{}',
        updated_at TEXT NOT NULL,
        PRIMARY KEY (kind, name)
      );
    `,
  },
  {
    // System containers beside VMs: the instance type picks the driver (QEMU or LXC).
    version: 11,
    sql: `
      ALTER TABLE instances ADD COLUMN type TEXT NOT NULL DEFAULT 'vm' CHECK (type IN ('vm', 'container'));
    `,
  },
  {
    // Shared storage: a pool is a local directory, a directory mounted on every host, or an NFS export that
    // QEMU reaches itself (`source` SERVER:/EXPORT; `path` then is the nfs:// URL of its top directory).
    version: 13,
    sql: `
      ALTER TABLE pools ADD COLUMN type TEXT NOT NULL DEFAULT 'dir' CHECK (type IN ('dir', 'shared-dir', 'nfs'));
      ALTER TABLE pools ADD COLUMN source TEXT;
    `,
  },
];
