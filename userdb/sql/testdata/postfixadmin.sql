-- The PostfixAdmin 3.x tables vmaild reads (MySQL/MariaDB), as its setup
-- creates them, trimmed of columns vmaild never looks at.
CREATE TABLE domain (
  domain varchar(255) NOT NULL,
  description varchar(255) NOT NULL DEFAULT '',
  aliases int(10) NOT NULL DEFAULT 0,
  mailboxes int(10) NOT NULL DEFAULT 0,
  maxquota bigint(20) NOT NULL DEFAULT 0,
  quota bigint(20) NOT NULL DEFAULT 0,
  transport varchar(255) DEFAULT NULL,
  backupmx tinyint(1) NOT NULL DEFAULT 0,
  created datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
  modified datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
  active tinyint(1) NOT NULL DEFAULT 1,
  PRIMARY KEY (domain)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='Postfix Admin - Virtual Domains';

CREATE TABLE mailbox (
  username varchar(255) NOT NULL,
  password varchar(255) NOT NULL,
  name varchar(255) CHARACTER SET utf8mb4 NOT NULL DEFAULT '',
  maildir varchar(255) NOT NULL,
  quota bigint(20) NOT NULL DEFAULT 0,
  local_part varchar(255) NOT NULL,
  domain varchar(255) NOT NULL,
  created datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
  modified datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
  active tinyint(1) NOT NULL DEFAULT 1,
  PRIMARY KEY (username),
  KEY domain (domain)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='Postfix Admin - Virtual Mailboxes';

CREATE TABLE alias (
  address varchar(255) NOT NULL,
  goto text NOT NULL,
  domain varchar(255) NOT NULL,
  created datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
  modified datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
  active tinyint(1) NOT NULL DEFAULT 1,
  PRIMARY KEY (address),
  KEY domain (domain)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='Postfix Admin - Virtual Aliases';

CREATE TABLE alias_domain (
  alias_domain varchar(255) NOT NULL,
  target_domain varchar(255) NOT NULL,
  created datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
  modified datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
  active tinyint(1) NOT NULL DEFAULT 1,
  PRIMARY KEY (alias_domain),
  KEY active (active),
  KEY target_domain (target_domain)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='Postfix Admin - Domain Aliases';

CREATE TABLE quota2 (
  username varchar(100) NOT NULL,
  bytes bigint(20) NOT NULL DEFAULT 0,
  messages int(11) NOT NULL DEFAULT 0,
  PRIMARY KEY (username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

INSERT INTO domain (domain, description, backupmx, active) VALUES
  ('ALL', '', 0, 1),
  ('example.com', 'Example', 0, 1),
  ('example.net', 'Alias of example.com', 0, 1),
  ('closed.example', 'Disabled', 0, 0),
  ('backup.example', 'Backup MX only', 1, 1);

INSERT INTO mailbox (username, password, name, maildir, quota, local_part, domain, active) VALUES
  ('alice@example.com', '{PLAIN}secret', 'Alice', 'example.com/alice/', 0, 'alice', 'example.com', 1),
  ('bob@example.com', '{SHA512-CRYPT}$6$saltsalt$8iYtNHxjWRl.NF6oNZ5tF.iKFlQREaXBLlSmZKP6dy9l5z3vsooWNW0/GZ6Nej73/TFug6pIPSqbJoCT6dfnj.', 'Bob', 'example.com/bob/', 1048576, 'bob', 'example.com', 1),
  ('carol@example.com', '$6$pepper12$7Tgct.nhHqqmPzYHfVkJBpEF4DYiIJFQD12Pvwh5oeuiHtOSUcsVWMNFCnHCqLMeFHpgaxcBcNKPn.5x.hTSJ.', 'Carol', 'example.com/carol/', 0, 'carol', 'example.com', 0),
  ('dan@closed.example', '{PLAIN}danpw', 'Dan', 'closed.example/dan/', 0, 'dan', 'closed.example', 1);

INSERT INTO alias (address, goto, domain, active) VALUES
  ('alice@example.com', 'alice@example.com', 'example.com', 1),
  ('bob@example.com', 'bob@example.com', 'example.com', 1),
  ('sales@example.com', 'alice@example.com,bob@example.com, friend@elsewhere.example', 'example.com', 1),
  ('old@example.com', 'alice@example.com', 'example.com', 0),
  ('@example.com', 'alice@example.com', 'example.com', 1);

INSERT INTO alias_domain (alias_domain, target_domain, active) VALUES
  ('example.net', 'example.com', 1);
