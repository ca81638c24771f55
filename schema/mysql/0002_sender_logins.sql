-- The explicit sender-login map, Postfix's smtpd_sender_login_maps: login
-- may send as address, an address or "@domain" for every address of a
-- domain. Beyond an account's own address (and its plus and alias-domain
-- forms) only these rows grant sender rights: aliases and catch-alls do not.

-- No foreign keys: address may be in a domain that is not ours, and the
-- login's account may live in LDAP.
CREATE TABLE IF NOT EXISTS sender_logins (
    address VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    login   VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    -- The address's domain, kept so listing a domain's grants uses an index.
    domain  VARCHAR(253) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    created DATETIME     NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (address, login),
    INDEX sender_logins_domain (domain),
    -- Deleting an account deletes its grants.
    INDEX sender_logins_login (login)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
