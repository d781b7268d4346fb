#!/bin/bash
# console.sh: what serving the operator console costs a replay of FILE. Each trial runs `vigil
# replay --shards $SHARDS` of FILE (default: one per core, as vigil replay does) without the
# console, then with `--serve 127.0.0.1:0`, and prints the wall time to the replay's summary, the
# process's CPU time and its peak resident memory (GNU time for the replay without the console;
# /proc for the one with it, which keeps serving after its summary: its CPU time once it has been
# idle for 0.3 s, the console's goroutine having put the last update in its index, and then it is
# stopped).
#
#   bench/scalebench/console.sh bin/vigil /tmp/sb/fleet-300000-10-5-5s.jsonl [trials]
#
# (scalebench -keep writes such files.)
set -euo pipefail
vigil=${1:?usage: console.sh VIGIL FILE [TRIALS]}
file=${2:?usage: console.sh VIGIL FILE [TRIALS]}
trials=${3:-3}
shards=${SHARDS:-$(nproc)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tick=$(getconf CLK_TCK)
# run LABEL ARGS...: the replay with ARGS, measured until its summary, then stopped
run() {
	local label=$1 start pid stat
	shift
	start=$(date +%s%N)
	"$vigil" replay --shards "$shards" "$@" "$file" >/dev/null 2>"$tmp/err" &
	pid=$!
	until grep -q '^baseline: version' "$tmp/err"; do
		kill -0 "$pid" 2>/dev/null || { cat "$tmp/err" >&2; exit 1; }
		sleep 0.02
	done
	local ms=$((($(date +%s%N) - start) / 1000000)) cpu=-1 now idle=0
	while ((idle < 3)); do # the console applies the last update after the summary
		read -r -a stat <"/proc/$pid/stat"
		now=$((stat[13] + stat[14]))
		if ((now == cpu)); then idle=$((idle + 1)); else idle=0; fi
		cpu=$now
		sleep 0.1
	done
	awk -v label="$label" -v ms="$ms" -v cpu="$cpu" -v tick="$tick" \
		-v rss="$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")" \
		'BEGIN { printf "%-10s %6.2f s wall %6.2f s CPU %6.0f MB peak RSS\n", label, ms/1000, cpu/tick, rss/1024 }'
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
for _ in $(seq "$trials"); do
	/usr/bin/time -f 'bare       %e s wall %U+%S s CPU %M KB peak RSS' "$vigil" replay --shards "$shards" "$file" >/dev/null 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
	tail -1 "$tmp/err" | awk '{ split($5, c, "+"); printf "%-10s %6.2f s wall %6.2f s CPU %6.0f MB peak RSS\n", $1, $2, c[1]+c[2], $8/1024 }'
	run --serve --serve 127.0.0.1:0
done
