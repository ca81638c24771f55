#!/bin/sh
# Regenerates the captured vectors in this directory from the real tools:
# slappasswd (slapd), doveadm pw (dovecot-core) and argon2 (argon2).
# Each output line is "password<TAB>stored hash". The tests read these files
# and do not need the tools installed.
set -eu
cd "$(dirname "$0")"
PWS='secret
Tr0ub4dor&3
pässwörd
correct horse battery staple'

{
	echo "# slappasswd, OpenLDAP $(dpkg-query -W -f "\${Version}" slapd)"
	echo "$PWS" | while IFS= read -r pw; do
		for h in '{SSHA}' '{SHA}'; do
			printf '%s\t%s\n' "$pw" "$(/usr/sbin/slappasswd -n -s "$pw" -h "$h")"
		done
		for h in '{SSHA256}' '{SSHA512}' '{SHA256}' '{SHA512}'; do
			printf '%s\t%s\n' "$pw" "$(/usr/sbin/slappasswd -n -o module-load=pw-sha2 -s "$pw" -h "$h")"
		done
		for c in '$6$%.16s' '$5$%.16s' '$6$rounds=10000$%.16s'; do
			printf '%s\t%s\n' "$pw" "$(/usr/sbin/slappasswd -n -s "$pw" -h '{CRYPT}' -c "$c")"
		done
	done
} >slappasswd.txt

{
	echo "# doveadm pw, dovecot $(dovecot --version)"
	echo "$PWS" | while IFS= read -r pw; do
		for s in SSHA SSHA256 SSHA512 SHA SHA256 SHA512 SHA256.HEX SSHA512.HEX PLAIN CLEARTEXT PLAIN.B64 \
			SHA256-CRYPT SHA512-CRYPT BLF-CRYPT ARGON2I ARGON2ID; do
			printf '%s\t%s\n' "$pw" "$(doveadm pw -s "$s" -p "$pw")"
		done
		printf '%s\t%s\n' "$pw" "$(doveadm pw -s SHA512-CRYPT -r 20000 -p "$pw")"
		printf '%s\t%s\n' "$pw" "$(doveadm pw -s BLF-CRYPT -r 8 -p "$pw")"
	done
} >doveadm.txt

{
	echo "# argon2 command line tool (phc-winner-argon2), -e output with a {SCHEME} prefix added"
	echo "$PWS" | while IFS= read -r pw; do
		for a in "-i -t 3 -m 12 -p 1" "-id -t 2 -m 12 -p 2 -l 16" "-id -t 1 -k 8192 -p 4 -l 64" "-i -t 4 -k 1024 -p 1"; do
			v=ARGON2I
			case "$a" in -id*) v=ARGON2ID ;; esac
			# shellcheck disable=SC2086
			printf '%s\t{%s}%s\n' "$pw" "$v" "$(printf '%s' "$pw" | argon2 "saltsalt$(echo "$a" | tr -dc 0-9)" $a -e)"
		done
	done
} >argon2.txt
