#!/usr/bin/env bash
# Block every address or CIDR in a file (one per line, '#' comments and blank
# lines ignored). Bad lines are reported with their line number and skipped;
# the good lines go to the kernel in one bpftool process per map, and are
# recorded in the state database in vosctl's order (state write lock, maps,
# rows, commit). Exits 1 when any line was bad or a map was full (what fit is
# loaded, recorded and reported), so cron notices.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

usage() { echo "usage: ${0##*/} <file|-> (one IPv4 or IPv6 address or CIDR per line) [--ttl SECONDS|30m|2h|7d] [--source NAME] [--pin-dir DIR] [--state-dir DIR]" >&2; exit 2; }

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
[ "$file" = - ] || [ -r "$file" ] || vfp_die 2 "cannot read $(vfp_quoted "$file")"
vfp_require_maps

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rc=0
vfp_validate_file "$file" 1 "$work/good" || rc=1

source_id=$(vfp_source_id "$source")
value=$(vfp_block_value "$ttl" "$source_id")
bad=$VFP_BAD_LINES
good=$(wc -l <"$work/good")
vfp_state_begin

# One bpftool batch per map, so a full hash does not stop the prefixes (or
# the other way round). bpftool stops at the first failing update: every
# update before it was applied, none after.
full=()
: >"$work/loaded"
for kind in exact prefix exact6 prefix6; do
	case $kind in
	exact) map=$(vfp_map blocked_ips) ;;
	prefix) map=$(vfp_map blocked_prefixes) ;;
	exact6) map=$(vfp_map blocked_ips6) ;;
	prefix6) map=$(vfp_map blocked_prefixes6) ;;
	esac
	# A canonical text with a colon is IPv6; its exact addresses are /128.
	awk -v kind="$kind" '{ v6 = index($2, ":") > 0; exact = $3 == (v6 ? 128 : 32) }
		kind == (exact ? "exact" : "prefix") (v6 ? "6" : "")' "$work/good" >"$work/$kind"
	[ -s "$work/$kind" ] || continue
	[ -e "$map" ] || vfp_die 3 "no ${map##*/} in $(vfp_pin_dir): these maps predate IPv6; run scripts/load.sh again to create it"
	# By map id: each batch line by pinned path would open the map again.
	id=$(bpftool -j map show pinned "$map" | jq -r .id)
	awk -v id="$id" -v v="$value" '{
		key = $4; for (i = 5; i <= NF; i++) key = key " " $i
		print "map update id " id " key hex " key " value hex " v
	}' "$work/$kind" >"$work/batch"
	if bpftool batch file "$work/batch" >"$work/out" 2>&1; then
		cut -d' ' -f2 "$work/$kind" >>"$work/loaded"
		continue
	fi
	if ! grep -qiE 'argument list too long|E2BIG|no space left' "$work/out"; then
		cat "$work/out" >&2
		vfp_die 1 "bpftool batch failed on ${map##*/}; nothing was recorded in the state"
	fi
	# Full: the applied updates are those before the first key the map lacks.
	bpftool map dump pinned "$map" | awk '/^key:/ { k = ""; for (i = 2; i <= NF && $i != "value:"; i++) k = k (k == "" ? "" : " ") $i; print k }' >"$work/inmap"
	awk 'NR == FNR { have[$0] = 1; next }
		{ key = $4; for (i = 5; i <= NF; i++) key = key " " $i; if (!(key in have)) exit; print $2 }' "$work/inmap" "$work/$kind" >>"$work/loaded"
	full+=("$(vfp_full_error "$map")")
done
loaded=$(wc -l <"$work/loaded")

vfp_state_put_sql "$source" "$ttl" <"$work/loaded" >"$work/state.sql"
vfp_state_sql ".read $work/state.sql" ||
	vfp_die 1 "the state database $(vfp_state_db) could not record the $loaded loaded entries: $VFP_SQL_OUT (the maps have them; a reboot would lose them)"
vfp_state_commit "loaded $loaded of $good entries"

if ((${#full[@]})); then
	for f in "${full[@]}"; do echo "${0##*/}: $f" >&2; done
	echo "loaded $loaded of $good entries, skipped $bad bad lines"
	vfp_exit 1
fi
echo "loaded $loaded entries, skipped $bad bad lines"
vfp_exit "$rc"
