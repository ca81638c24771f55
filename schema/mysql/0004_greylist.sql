-- Greylisting's triplets: a client network, an envelope sender and a
-- recipient, with when they were first and last seen and whether a retry
-- has passed. Times are Unix seconds, so both dialects compare them the
-- same way.
CREATE TABLE IF NOT EXISTS greylist (
    -- Network in prefix notation, 192.0.2.0/24 or 2001:db8::/64.
    client     VARCHAR(50)  CHARACTER SET ascii   COLLATE ascii_bin   NOT NULL,
    -- Lower case; "" for the null sender.
    sender     VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    recipient  VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    first_seen BIGINT       NOT NULL,
    last_seen  BIGINT       NOT NULL,
    passed     TINYINT(1)   NOT NULL DEFAULT 0,
    PRIMARY KEY (client, sender, recipient),
    -- Expiry deletes by age.
    INDEX greylist_last_seen (last_seen)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
