#!/bin/sh
# The whole vmaild test suite. On Debian it first installs, when missing, the
# real servers the tests start privately, the real clients they drive, and
# what those need to work; then it vets and tests every package.
set -eu
cd "$(dirname "$0")"

# Debian packages, each with the reason it is here. Installed with
# --no-install-recommends, so anything a tool needs only as a Recommends
# is named explicitly.
packages="
slapd              internal/testsrv starts a private slapd; slapadd, slappasswd
ldap-utils         ldapadd, ldapwhoami drive the private slapd
mariadb-server     internal/testsrv starts a private mariadbd (mariadb-install-db)
swaks              the SMTP, submission and LMTP client of protocols/smtp tests
libnet-ssleay-perl swaks's TLS (--tls, --tlsc): a Recommends of swaks
curl               IMAP and POP3 client tests
isync              mbsync, the two-way Maildir sync client of protocols/imap TestMbsync (UIDPLUS, flags both ways, CREATE)
fetchmail          the IMAP fetch-and-flag client of protocols/imap TestFetchmail
python3            imaplib, poplib and smtplib (REQUIRETLS) client tests; zlib as the COMPRESS=DEFLATE peer
postsrsd           backend/srs interoperates with a private postsrsd
srs                Mail::SRS's srs command, the second SRS oracle
python3-dkim       dkimpy's dkimverify checks vmaild's DKIM signatures; its dkimsign signs what senderauth verifies
openssl            computes DANE TLSA record data for backend/queue tests, as admins do
dovecot-core       sieve-test: Pigeonhole as the Sieve oracle only (never started as a service), and a private Dovecot IMAP as the SEARCH/SORT/THREAD, FETCH and LIST oracle (internal/testdovecot)
dovecot-imapd      imap and imap-login of that private Dovecot IMAP (internal/testdovecot; dovecot-core alone has no IMAP)
dovecot-sieve      sieve-test: Pigeonhole as the Sieve oracle only (sieve-test, sievec)
postfix            protocols/bridge tests start a private Postfix that authenticates and looks up through vmaild
sasl2-bin          testsaslauthd, the saslauthd client of protocols/bridge tests
sieve-connect      the ManageSieve client cmd/vmaild's end-to-end test uploads scripts with
rspamd             internal/testscan starts a private rspamd: the inbound rspamd check's peer (GTUBE)
spamd              internal/testscan starts a private spamd: the SPAMC peer of the inbound spamd check
spamassassin       the rules spamd reads from /usr/share/spamassassin (GTUBE among them)
clamav-daemon      internal/testscan starts a private clamd (INSTREAM, a database of only EICAR's signature)
opendkim           internal/testscan starts a private opendkim: the milter the inbound milter check talks to
gcc                go test -race needs cgo
libc6-dev          cgo's C headers and startup files (a Recommends of gcc)
ca-certificates    go downloads modules over HTTPS
git                the compose test checks what is committed (git ls-files)
"
names=$(printf '%s\n' "$packages" | awk 'NF { print $1 }')

if command -v dpkg-query >/dev/null 2>&1; then
	missing=""
	for pkg in $names; do
		[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)" = installed ] ||
			missing="$missing $pkg"
	done
	if [ -n "$missing" ]; then
		echo "test.sh: installing:$missing"
		sudo=""
		[ "$(id -u)" -eq 0 ] || sudo=sudo
		$sudo apt-get update -qq
		$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
		echo "test.sh: installed"
	fi
else
	echo "test.sh: not Debian; install the equivalents of:" $names >&2
fi

# Docker Compose, the oracle of the compose tests (`docker compose config`):
# neither Docker nor Compose v2 is a Debian 12 package, so it is built once
# from the version tools/compose pins, into the user's cache.
compose_version=$(awk '$1 == "github.com/docker/compose/v5" { print $2 }' tools/compose/go.mod)
VMAILD_COMPOSE=${VMAILD_COMPOSE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmaild/docker-compose-$compose_version}
if [ ! -x "$VMAILD_COMPOSE" ]; then
	echo "test.sh: building Docker Compose $compose_version into $VMAILD_COMPOSE"
	go build -C tools/compose -o "$VMAILD_COMPOSE" github.com/docker/compose/v5/cmd
fi
export VMAILD_COMPOSE

echo "test.sh: go vet ./..., gofmt -l ."
go vet ./...
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "test.sh: not gofmt'ed (run gofmt -w):" $unformatted >&2
	exit 1
fi
# -race everywhere: the protocol servers, store, queue and directory are
# concurrent, and the whole suite stays within a few minutes on 2 cores.
echo "test.sh: go test -race ./..."
go test -race -count=1 -timeout 15m ./...
./fuzz.sh 4s # every fuzz target briefly (about 2 minutes in all); ./fuzz.sh 10m runs them long
