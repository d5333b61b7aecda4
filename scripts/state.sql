-- The blocklist's durable state: one SQLite database, state.sqlite3 in the
-- state folder, shared by vosctl (lib/state.ts) and the scripts (lib.sh,
-- through the sqlite3 shell). Both run this file when they open a database
-- whose user_version is below 1; every statement is idempotent.
-- 16 KiB pages (set before the first table, so for new databases only):
-- fewer pages per bulk load, measured about 15 % less time writing 1,000,000
-- rows and committing them than SQLite's default 4 KiB.
PRAGMA page_size = 16384;
PRAGMA journal_mode = WAL;

-- One row per blocked address or prefix. target is the canonical text:
-- dotted quad for IPv4 ('203.0.113.7', '198.51.100.0/24'), RFC 5952 for IPv6
-- ('2001:db8::1', '2001:db8::/32'). family and prefixlen are derived from it.
-- A rowid table (target is UNIQUE, not the key): a bulk load appends rows, and
-- the source index, (source, rowid), grows at its end.
CREATE TABLE IF NOT EXISTS entries (
  target    TEXT NOT NULL UNIQUE,
  source    TEXT NOT NULL,               -- who blocked it: manual, amqp, a feed name
  reason    TEXT,
  added     INTEGER NOT NULL,            -- Unix seconds
  expires   INTEGER NOT NULL,            -- Unix seconds; 0 = never
  family    INTEGER GENERATED ALWAYS AS (CASE WHEN instr(target, ':') > 0 THEN 6 ELSE 4 END) VIRTUAL,
  prefixlen INTEGER GENERATED ALWAYS AS (CASE WHEN instr(target, '/') > 0 THEN CAST(substr(target, instr(target, '/') + 1) AS INTEGER)
                                              WHEN instr(target, ':') > 0 THEN 128 ELSE 32 END) VIRTUAL
);
-- Listing and counting by source (SELECT source, count(*) ... GROUP BY source reads this index only).
CREATE INDEX IF NOT EXISTS entries_by_source ON entries (source);
-- The expiry sweep: entries that expire, by expiry.
CREATE INDEX IF NOT EXISTS entries_by_expiry ON entries (expires) WHERE expires > 0;

-- Every source name ever written, with when it was first seen.
CREATE TABLE IF NOT EXISTS sources (
  name       TEXT PRIMARY KEY NOT NULL,
  first_seen INTEGER NOT NULL            -- Unix seconds
) WITHOUT ROWID;

-- A consumer's position in what it consumes (a stream offset), written in the
-- same transaction as the entries it applied.
CREATE TABLE IF NOT EXISTS consumer_offsets (
  consumer TEXT PRIMARY KEY NOT NULL,    -- e.g. the queue or stream name
  position INTEGER NOT NULL,
  updated  INTEGER NOT NULL              -- Unix seconds
) WITHOUT ROWID;

-- vos-fastpath's id in the database header ('VOSF'; file(1) shows it):
-- vosctl and the scripts refuse a SQLite file with another non-zero id.
PRAGMA application_id = 1448039238;
PRAGMA user_version = 1;
