#!/usr/bin/env bash
# Block every address or CIDR in a file (one per line, '#' comments and blank
# lines ignored). Bad lines are reported with their line number and skipped;
# all good lines go to the kernel in one bpftool process. Exits 1 when any
# line was bad, so cron notices, after loading the good ones.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

usage() { echo "usage: ${0##*/} <file|-> [--ttl SECONDS|30m|2h|7d] [--source NAME] [--pin-dir DIR]" >&2; exit 2; }

vfp_take_pin_dir "$@"
set -- "${VFP_ARGS[@]}"
if [ $# -lt 1 ] || { [[ $1 == -?* ]]; }; then usage; fi
file=$1
shift
ttl=0 source=manual
while (($#)); do
	case $1 in
	--ttl) [ $# -ge 2 ] || usage; ttl=$(vfp_parse_ttl "$2"); shift 2 ;;
	--source) [ $# -ge 2 ] || usage; source=$2; shift 2 ;;
	*) usage ;;
	esac
done
[ "$file" = - ] || [ -r "$file" ] || vfp_die 2 "cannot read '$file'"
vfp_require_maps

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rc=0
vfp_validate_file "$file" 1 "$work/good" || rc=1

source_id=$(vfp_source_id "$source")
value=$(vfp_block_value "$ttl" "$source_id")
# By map id: each batch line by pinned path would open the map again.
exact_id=$(bpftool -j map show pinned "$(vfp_map blocked_ips)" | jq -r .id)
prefix_id=$(bpftool -j map show pinned "$(vfp_map blocked_prefixes)" | jq -r .id)
awk -v e="$exact_id" -v p="$prefix_id" -v v="$value" '{
	id = ($3 == 32) ? e : p
	key = $4; for (i = 5; i <= NF; i++) key = key " " $i
	print "map update id " id " key hex " key " value hex " v
}' "$work/good" >"$work/batch"
good=$(wc -l <"$work/batch")
bad=$VFP_BAD_LINES

if ((good > 0)); then
	if ! bpftool batch file "$work/batch" >"$work/out" 2>&1; then
		done_n=$(grep -o 'processed [0-9]*' "$work/out" | grep -o '[0-9]*' || echo 0)
		if grep -qiE 'argument list too long|E2BIG' "$work/out"; then
			vfp_die 1 "$(vfp_full_error "$(vfp_map blocked_ips)"); loaded ${done_n:-0} of $good good lines"
		fi
		cat "$work/out" >&2
		vfp_die 1 "bpftool batch failed after ${done_n:-0} of $good lines"
	fi
fi
echo "loaded $good entries, skipped $bad bad lines"
exit "$rc"
