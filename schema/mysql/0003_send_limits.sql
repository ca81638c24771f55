-- Sending limits of authenticated users (package protocols/sendlimit): an
-- account's own, and its domain's for all its accounts together. NULL: the
-- configured default (sending_limits.*); 0: unlimited.
--
-- One ALTER per table, so each table gets its three columns or none; MySQL
-- has no ADD COLUMN IF NOT EXISTS, so a run interrupted between the two
-- is completed by the migration runner, which takes "duplicate column"
-- for a statement that already ran.
ALTER TABLE accounts
    ADD COLUMN send_messages_per_hour      BIGINT NULL,
    ADD COLUMN send_recipients_per_message BIGINT NULL,
    ADD COLUMN send_recipients_per_hour    BIGINT NULL;
ALTER TABLE domains
    ADD COLUMN send_messages_per_hour      BIGINT NULL,
    ADD COLUMN send_recipients_per_message BIGINT NULL,
    ADD COLUMN send_recipients_per_hour    BIGINT NULL;
