#!/bin/bash
# ceiling.sh: what two cores can do for a telemetry replay on this machine, against what one
# process with two engine shards does. Each trial runs `vigil replay` of FILE with GOMAXPROCS=1,
# then two such replays side by side (sharing nothing: the best two cores can do for this work,
# whatever the machine's caches, memory and hypervisor allow), then one with GOMAXPROCS=2.
#
#   bench/scalebench/ceiling.sh bin/vigil /tmp/sb/fleet-1000-1000-5-0s.jsonl [trials]
#
# (scalebench -keep writes such a file.)
set -euo pipefail
vigil=${1:?usage: ceiling.sh VIGIL FILE [TRIALS]}
file=${2:?usage: ceiling.sh VIGIL FILE [TRIALS]}
trials=${3:-5}
replay() { GOMAXPROCS=$1 "$vigil" replay --quiet --out /dev/null "$file"; }
seconds() { local s; s=$(date +%s%N); "$@"; echo $(( ($(date +%s%N) - s) / 1000000 )); }
for _ in $(seq "$trials"); do
	one=$(seconds replay 1)
	pair=$(seconds bash -c "$(declare -f replay); vigil='$vigil' file='$file'; replay 1 & replay 1 & wait")
	two=$(seconds replay 2)
	awk -v one="$one" -v pair="$pair" -v two="$two" 'BEGIN {
		printf "GOMAXPROCS=1 %.2f s; two side by side %.2f s: ceiling %.2f×; GOMAXPROCS=2 %.2f s: %.2f×\n",
			one/1000, pair/1000, 2*one/pair, two/1000, one/two }'
done
