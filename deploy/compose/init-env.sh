#!/bin/sh
# Writes .env for docker-compose.yml from .env.example, with a random value
# for every change-me placeholder (each its own), readable by its owner only.
# Run once from anywhere; it never overwrites an existing .env, because the
# directory and the database keep the passwords of their first start.
#
#   deploy/compose/init-env.sh [ENV_FILE]    (default: .env beside docker-compose.yml)
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
example="$root/.env.example"
out="${1:-$root/.env}"

if [ -e "$out" ]; then
	echo "init-env: $out exists; edit it, or move it away to start afresh (docker compose down -v)" >&2
	exit 1
fi

# 24 random bytes as 48 hex digits: safe in a DSN, an LDIF and a shell.
random() {
	od -An -tx1 -N24 /dev/urandom | tr -d ' \n'
}

umask 077
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
while IFS= read -r line || [ -n "$line" ]; do
	case "$line" in
	[A-Za-z_]*=change-me) printf '%s=%s\n' "${line%%=*}" "$(random)" ;;
	*) printf '%s\n' "$line" ;;
	esac
done <"$example" >"$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "init-env: wrote $out with new random secrets"
