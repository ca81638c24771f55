-- vmaild user directory, version 1, for SQLite 3.24+ (the embedded default).
-- The same logical tables as schema/mysql; booleans are 0/1 integers.

CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS domains (
    name                   TEXT    NOT NULL PRIMARY KEY,
    active                 INTEGER NOT NULL DEFAULT 1,
    -- Default limits for accounts without their own; 0 = unlimited.
    default_quota_bytes    INTEGER NOT NULL DEFAULT 0,
    default_quota_messages INTEGER NOT NULL DEFAULT 0,
    catchall               TEXT    NULL,
    -- Set for an alias domain: user@name is user@alias_for.
    alias_for              TEXT    NULL REFERENCES domains (name),
    created                TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS accounts (
    address        TEXT    NOT NULL PRIMARY KEY,
    domain         TEXT    NOT NULL REFERENCES domains (name),
    -- {SCHEME}-prefixed hash, as slappasswd and doveadm pw write it.
    password       TEXT    NOT NULL,
    name           TEXT    NOT NULL DEFAULT '',
    active         INTEGER NOT NULL DEFAULT 1,
    -- NULL in both = the domain default; otherwise 0 = unlimited.
    quota_bytes    INTEGER NULL,
    quota_messages INTEGER NULL,
    maildir        TEXT    NULL,
    created        TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS accounts_domain ON accounts (domain);

-- One row per source → destination; "@domain" as source is a catch-all.
CREATE TABLE IF NOT EXISTS aliases (
    source      TEXT NOT NULL,
    destination TEXT NOT NULL,
    domain      TEXT NOT NULL REFERENCES domains (name),
    created     TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (source, destination)
);
CREATE INDEX IF NOT EXISTS aliases_source ON aliases (source);
CREATE INDEX IF NOT EXISTS aliases_domain ON aliases (domain);

-- No foreign key to accounts: accounts may live in LDAP.
CREATE TABLE IF NOT EXISTS quota_usage (
    address  TEXT    NOT NULL PRIMARY KEY,
    bytes    INTEGER NOT NULL DEFAULT 0,
    messages INTEGER NOT NULL DEFAULT 0
);
