-- Greylisting's triplets: a client network, an envelope sender and a
-- recipient, with when they were first and last seen and whether a retry
-- has passed. The same logical table as schema/mysql/0004_greylist.sql.
-- Times are Unix seconds, so both dialects compare them the same way.
CREATE TABLE IF NOT EXISTS greylist (
    client     TEXT    NOT NULL, -- network in prefix notation, 192.0.2.0/24
    sender     TEXT    NOT NULL, -- lower case, "" for the null sender
    recipient  TEXT    NOT NULL, -- lower case
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    passed     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (client, sender, recipient)
);
-- Expiry deletes by age.
CREATE INDEX IF NOT EXISTS greylist_last_seen ON greylist (last_seen);
