#!/bin/sh
# The whole vmaild test suite: installs the real servers the tests start
# privately (OpenLDAP slapd, MariaDB) and the real clients they drive, when
# missing (Debian), then vets and tests every package.
set -eu
cd "$(dirname "$0")"

missing=""
for need in slapd:/usr/sbin/slapd ldap-utils:/usr/bin/ldapadd mariadb-server:/usr/sbin/mariadbd \
	swaks:/usr/bin/swaks curl:/usr/bin/curl python3:python3; do
	pkg=${need%%:*} bin=${need#*:}
	command -v "$bin" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
	echo "installing:$missing"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get update -qq
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

go vet ./...
# -race everywhere: the protocol servers, store, queue and directory are
# concurrent, and the whole suite stays within a few minutes on 2 cores.
go test -race -count=1 -timeout 15m ./...
./fuzz.sh 4s # every fuzz target briefly (about 2 minutes in all); ./fuzz.sh 10m runs them long
