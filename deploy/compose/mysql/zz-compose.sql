-- Runs after the schema files (docker-entrypoint-initdb.d runs its files in
-- name order, so this one comes after every NNNN_*.sql migration).

-- The schema files were applied by the MySQL image, not by `vmaild db
-- migrate`: record them, so that migrate applies only later migrations.
INSERT INTO schema_version (version, name) VALUES
    (1, '0001_init.sql'),
    (2, '0002_sender_logins.sql'),
    (3, '0003_send_limits.sql'),
    (4, '0004_greylist.sql');

-- The domains of ldif/example.ldif: accounts come from LDAP, but a domain is
-- local only when it is in SQL.
INSERT INTO domains (name) VALUES ('example.com'), ('example.org');

-- RFC 5321 wants a postmaster for every domain.
INSERT INTO aliases (source, destination, domain) VALUES
    ('postmaster@example.com', 'alice@example.com', 'example.com'),
    ('postmaster@example.org', 'carol@example.org', 'example.org');

-- Receiving mail for an address is no right to send as it: the postmasters
-- may use the postmaster addresses because these rows say so.
INSERT INTO sender_logins (address, login, domain) VALUES
    ('postmaster@example.com', 'alice@example.com', 'example.com'),
    ('postmaster@example.org', 'carol@example.org', 'example.org');
