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

failed=""
count=0
start=$(date +%s)
while read -r pkg name; do
	count=$((count + 1))
	echo "== $name ($pkg, $duration)"
	# Minimizing a new corpus entry may take up to 60s by default, a
	# whole short run; crashers still get minimized within this bound.
	if ! go test -run '^$' -fuzz "^$name\$" -fuzztime "$duration" -fuzzminimizetime "${FUZZ_MINIMIZE:-5s}" \
		-parallel "$parallel" "$pkg"; then
		failed="$failed $pkg.$name"
	fi
done <<EOF
$targets
EOF

echo "fuzz.sh: $count targets in $(($(date +%s) - start))s"
if [ -n "$failed" ]; then
	echo "fuzz.sh: findings in:$failed" >&2
	exit 1
fi
