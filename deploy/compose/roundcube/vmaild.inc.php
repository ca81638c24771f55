<?php
// Roundcube of docker-compose.yml (profile webmail), included by the image
// after its own settings (ROUNDCUBEMAIL_* in docker-compose.yml name
// vmaild's IMAP and submission listeners on the compose network).
//
// vmaild's certificate is self-signed for mail.example.com until tls.cert_file
// names a real one, and Roundcube reaches it as "vmaild": the name and the
// chain are not checked on this private network. With a real certificate,
// set verify_peer and verify_peer_name to true.
$tls = [
    'ssl' => [
        'peer_name' => 'mail.example.com',
        'verify_peer' => false,
        'verify_peer_name' => false,
        'allow_self_signed' => true,
    ],
];
$config['imap_conn_options'] = $tls;
$config['smtp_conn_options'] = $tls;

// Submission needs AUTH: Roundcube logs in as the webmail user.
$config['smtp_user'] = '%u';
$config['smtp_pass'] = '%p';

// vmaild creates and subscribes the special-use folders; Roundcube finds
// them by their names.
$config['drafts_mbox'] = 'Drafts';
$config['sent_mbox'] = 'Sent';
$config['junk_mbox'] = 'Junk';
$config['trash_mbox'] = 'Trash';
