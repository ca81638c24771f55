#!/bin/sh
# Runs every Go fuzz target of the module, one after the other, each for
# DURATION (default 10s): ./fuzz.sh 10m for a long run. Targets are found
# with go test -list, so a new Fuzz function needs no edit here. At most 2
# fuzzing workers run at a time (FUZZ_PARALLEL overrides), which fits a
# 2-core machine. A finding fails the script after the remaining targets
# have run; go test writes the crasher to the package's
# testdata/fuzz/<Target>/, where it stays as a seed once fixed.
set -eu
cd "$(dirname "$0")"

duration=${1:-10s}
# Targets that write files (spool, uidlist) spend milliseconds per input in
# fsync and ext4's flush on rewrite; on a tmpfs they fuzz a hundred times
# faster, and what they check does not depend on the disk.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
	export TMPDIR=/dev/shm
fi
parallel=${FUZZ_PARALLEL:-2}
cpus=$(nproc 2>/dev/null || echo 2)
[ "$parallel" -le "$cpus" ] || parallel=$cpus

# "FuzzX" lines come before the "ok <package>" line of their package.
list=$(go test -list '^Fuzz' ./...)
targets=$(printf '%s\n' "$list" | awk '
	/^Fuzz/ { names = names " " $1; next }
	/^ok/ { n = split(names, a, " "); for (i = 1; i <= n; i++) print $2, a[i]; names = "" }
')
[ -n "$targets" ] || { echo "fuzz.sh: no fuzz targets found" >&2; exit 1; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=""
flaked=""
count=0
start=$(date +%s)
while read -r pkg name; do
	count=$((count + 1))
	echo "== $name ($pkg, $duration)"
	corpus="$(go list -f '{{.Dir}}' "$pkg")/testdata/fuzz/$name"
	before=$(ls "$corpus" 2>/dev/null | wc -l)
	# -fuzzminimizetime: minimizing a new corpus entry may take 60s by
	# default, a whole short run; crashers still get minimized. -timeout 0:
	# the default 10m would end a 10m run as a failure; every target bounds
	# its own inputs.
	if go test -run '^$' -fuzz "^$name\$" -fuzztime "$duration" -fuzzminimizetime "${FUZZ_MINIMIZE:-5s}" \
		-parallel "$parallel" -timeout 0 "$pkg" >"$log" 2>&1; then
		tail -n 3 "$log"
		continue
	fi
	cat "$log"
	after=$(ls "$corpus" 2>/dev/null | wc -l)
	# Go's fuzz coordinator may report its own -fuzztime deadline as a
	# failure (golang/go#75804, fixed in Go 1.27): no crasher, no failing
	# test, just "context deadline exceeded".
	if [ "$after" -eq "$before" ] && grep -q '^    context deadline exceeded$' "$log" && ! grep -q -- "--- FAIL: $name/" "$log"; then
		echo "fuzz.sh: $name: the coordinator's deadline race (golang/go#75804), not a finding"
		flaked="$flaked $name"
		continue
	fi
	failed="$failed $pkg.$name"
done <<EOF
$targets
EOF

echo "fuzz.sh: $count targets in $(($(date +%s) - start))s${flaked:+; deadline race in:$flaked}"
if [ -n "$failed" ]; then
	echo "fuzz.sh: findings in:$failed" >&2
	exit 1
fi
