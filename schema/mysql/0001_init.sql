-- vmaild user directory, version 1, for MySQL 5.7+ / MariaDB 10.5+.
--
-- Addresses and domain names are stored canonical (lower case) and compared
-- byte-wise (utf8mb4_bin): the Go side canonicalises once, so a collation
-- that folds case or pads spaces could only hide mistakes.

CREATE TABLE IF NOT EXISTS schema_version (
    version    INT          NOT NULL PRIMARY KEY,
    name       VARCHAR(255) NOT NULL,
    applied_at DATETIME     NOT NULL DEFAULT CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS domains (
    name                   VARCHAR(253) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    active                 TINYINT(1)   NOT NULL DEFAULT 1,
    -- Default limits for accounts without their own; 0 = unlimited.
    default_quota_bytes    BIGINT       NOT NULL DEFAULT 0,
    default_quota_messages BIGINT       NOT NULL DEFAULT 0,
    -- Receives mail for unknown local parts when set.
    catchall               VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    -- Set for an alias domain: user@name is user@alias_for.
    alias_for              VARCHAR(253) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    created                DATETIME     NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT domains_alias_for_fk FOREIGN KEY (alias_for) REFERENCES domains (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS accounts (
    address        VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    domain         VARCHAR(253) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    -- {SCHEME}-prefixed hash, as slappasswd and doveadm pw write it.
    password       VARCHAR(512) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    name           VARCHAR(255) NOT NULL DEFAULT '',
    active         TINYINT(1)   NOT NULL DEFAULT 1,
    -- NULL in both = the domain default; otherwise 0 = unlimited.
    quota_bytes    BIGINT       NULL,
    quota_messages BIGINT       NULL,
    -- NULL = the store's path template.
    maildir        VARCHAR(1024) NULL,
    created        DATETIME     NOT NULL DEFAULT CURRENT_TIMESTAMP,
    INDEX accounts_domain (domain),
    CONSTRAINT accounts_domain_fk FOREIGN KEY (domain) REFERENCES domains (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per source → destination; "@domain" as source is a catch-all.
CREATE TABLE IF NOT EXISTS aliases (
    source      VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    destination VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    -- The source's domain, kept so listing a domain's aliases uses an index.
    domain      VARCHAR(253) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    created     DATETIME     NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (source, destination),
    INDEX aliases_source (source),
    INDEX aliases_domain (domain),
    CONSTRAINT aliases_domain_fk FOREIGN KEY (domain) REFERENCES domains (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Usage is kept apart from accounts (no foreign key) because accounts may
-- live in LDAP while usage lives here.
CREATE TABLE IF NOT EXISTS quota_usage (
    address  VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    bytes    BIGINT NOT NULL DEFAULT 0,
    messages BIGINT NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
