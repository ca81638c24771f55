-- Runs after the schema files (docker-entrypoint-initdb.d runs its files in
-- name order, so this one comes after every NNNN_*.sql migration).

-- The schema files were applied by the MySQL image, not by `vmaild db
-- migrate`: record them, so that migrate applies only later migrations.
INSERT INTO schema_version (version, name) VALUES
    (1, '0001_init.sql');

-- The domains of ldif/example.ldif: accounts come from LDAP, but a domain is
-- local only when it is in SQL.
INSERT INTO domains (name) VALUES ('example.com'), ('example.org');

-- RFC 5321 wants a postmaster for every domain.
INSERT INTO aliases (source, destination, domain) VALUES
    ('postmaster@example.com', 'alice@example.com', 'example.com'),
    ('postmaster@example.org', 'carol@example.org', 'example.org');
