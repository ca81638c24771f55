#!/bin/sh
# freshcheck.sh: prove that vmaild's ./test.sh passes on a fresh Debian 12
# machine where none of the test packages were installed beforehand.
#
# Usage: freshcheck.sh [GIT_DIR_OR_URL [BRANCH]]
#   GIT_DIR_OR_URL  repository to clone (default: this checkout)
#   BRANCH          branch or tag to check out (default: the repository's HEAD)
# Environment:
#   CHROOT_DIR  where the pristine base tarball and the runs live (/var/tmp/vmaild-freshcheck)
#   KEEP=1      keep the run's root directory afterwards (default: removed on success)
#   TEST_CMD    command run in the clone (default: ./test.sh)
#
# What it does:
#   1. once: debootstrap --variant=minbase bookworm (from the mirror this
#      machine's apt uses) and keep it as $CHROOT_DIR/bookworm-base.tar;
#   2. every run: unpack that tarball into a new directory, copy in only Go
#      (/usr/local/go), the host's apt sources, resolv.conf and local CA
#      certificates (/usr/local/share/ca-certificates), the /etc/hosts the
#      Debian installer writes (debootstrap writes none), and a
#      policy-rc.d so that package installs do not start system daemons
#      (slapd, mariadb) on the host's network;
#   3. git clone the branch into /root/vmaild inside (with the host's git: git
#      itself is not installed in the chroot);
#   4. in a private mount and PID namespace (all mounts and processes vanish
#      with it) mount proc, sys, dev, dev/pts and run `CI=true ./test.sh` as
#      root with a clean environment; every output line is time-stamped.
# Exit status is test.sh's. The log is $RUN/freshcheck.log (also on stdout).
set -eu

repo=${1:-$(cd "$(dirname "$0")/.." && pwd)}
branch=${2:-}
chroot_dir=${CHROOT_DIR:-/var/tmp/vmaild-freshcheck}
test_cmd=${TEST_CMD:-./test.sh}
base_tar=$chroot_dir/bookworm-base.tar

[ "$(id -u)" -eq 0 ] || { echo "freshcheck: must run as root (debootstrap, chroot, mount)" >&2; exit 2; }
[ -x /usr/local/go/bin/go ] || { echo "freshcheck: /usr/local/go/bin/go missing" >&2; exit 2; }
mkdir -p "$chroot_dir"

# The mirror: the first deb.debian.org-style URI of the host's Debian sources.
mirror=$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
[ -n "$mirror" ] || mirror=$(sed -n 's/^deb  *\(http[^ ]*\/debian\)  *bookworm .*/\1/p' /etc/apt/sources.list 2>/dev/null | head -n1)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian

if [ ! -f "$base_tar" ]; then
	command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap
	tmp=$chroot_dir/base.tmp
	rm -rf "$tmp"
	echo "freshcheck: debootstrap bookworm from $mirror"
	debootstrap --variant=minbase bookworm "$tmp" "$mirror"
	tar --numeric-owner -C "$tmp" -cf "$base_tar.tmp" .
	mv "$base_tar.tmp" "$base_tar"
	rm -rf "$tmp"
fi

run=$chroot_dir/run-$(date +%Y%m%d-%H%M%S)
root=$run/root
mkdir -p "$root"
tar --numeric-owner -C "$root" -xf "$base_tar"
cp -a /usr/local/go "$root/usr/local/go"

# A real machine's apt knows the same suites as this one (bookworm,
# bookworm-updates, bookworm-security).
if ls /etc/apt/sources.list.d/debian.sources >/dev/null 2>&1; then
	rm -f "$root/etc/apt/sources.list"
	cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/debian.sources"
fi
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
# debootstrap writes no /etc/hosts; the Debian installer writes this one.
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n' \
	"$(uname -n)" >"$root/etc/hosts"
# The site's local CAs (an HTTPS-intercepting egress proxy, for instance):
# any machine on this network has them; ca-certificates' postinst, run when
# test.sh installs it, adds them to the trust store.
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
	mkdir -p "$root/usr/local/share/ca-certificates"
	cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
fi
printf '#!/bin/sh\n# chroot: never start services from package scripts\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
chmod 1777 "$root/tmp"

if [ -n "$branch" ]; then
	git clone -q --no-hardlinks --branch "$branch" "$repo" "$root/root/vmaild"
else
	git clone -q --no-hardlinks "$repo" "$root/root/vmaild"
fi
commit=$(git -C "$root/root/vmaild" rev-parse HEAD)
echo "freshcheck: $repo ${branch:-HEAD} at $commit in $root" | tee "$run/freshcheck.log"

start=$(date +%s)
rcfile=$root/root/freshcheck.rc
rm -f "$rcfile"
# The pipeline's status is the timestamper's, so the command's exit status
# goes through a file in the chroot.
unshare --mount --pid --fork --kill-child sh -eu -c '
	root=$1 cmd=$2
	mount -t proc proc "$root/proc"
	mount -t sysfs sys "$root/sys"
	mount --bind /dev "$root/dev"
	mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
	mount -t tmpfs tmpfs "$root/dev/shm"
	exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 CI=true \
		PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		sh -c "cd /root/vmaild && $cmd; echo \$? >/root/freshcheck.rc"
' freshcheck "$root" "$test_cmd" 2>&1 | while IFS= read -r line; do
	printf '%s %s\n' "$(date +%T)" "$line"
done | tee -a "$run/freshcheck.log"
end=$(date +%s)
rc=$(cat "$rcfile" 2>/dev/null || echo 1)
if [ "$rc" -eq 0 ]; then result=PASS; else result="FAIL (exit $rc)"; fi
echo "freshcheck: $result in $((end - start)) s (commit $commit; log $run/freshcheck.log)" | tee -a "$run/freshcheck.log"
if [ "$result" = PASS ] && [ "${KEEP:-0}" != 1 ]; then
	rm -rf "$root"
fi
[ "$rc" -eq 0 ]
