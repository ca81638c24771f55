-- The explicit sender-login map, Postfix's smtpd_sender_login_maps: login
-- may send as address, an address or "@domain" for every address of a
-- domain. The same logical table as schema/mysql/0002_sender_logins.sql.

-- No foreign keys: address may be in a domain that is not ours, and the
-- login's account may live in LDAP.
CREATE TABLE IF NOT EXISTS sender_logins (
    address TEXT NOT NULL,
    login   TEXT NOT NULL,
    -- The address's domain, kept so listing a domain's grants uses an index.
    domain  TEXT NOT NULL,
    created TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (address, login)
);
CREATE INDEX IF NOT EXISTS sender_logins_domain ON sender_logins (domain);
-- Deleting an account deletes its grants.
CREATE INDEX IF NOT EXISTS sender_logins_login ON sender_logins (login);
