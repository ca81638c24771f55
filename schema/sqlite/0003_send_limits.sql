-- Sending limits of authenticated users (package protocols/sendlimit): an
-- account's own, and its domain's for all its accounts together. NULL: the
-- configured default (sending_limits.*); 0: unlimited. The same logical
-- columns as schema/mysql/0003_send_limits.sql.
ALTER TABLE accounts ADD COLUMN send_messages_per_hour INTEGER NULL;
ALTER TABLE accounts ADD COLUMN send_recipients_per_message INTEGER NULL;
ALTER TABLE accounts ADD COLUMN send_recipients_per_hour INTEGER NULL;
ALTER TABLE domains ADD COLUMN send_messages_per_hour INTEGER NULL;
ALTER TABLE domains ADD COLUMN send_recipients_per_message INTEGER NULL;
ALTER TABLE domains ADD COLUMN send_recipients_per_hour INTEGER NULL;
