#!/usr/bin/env bash
# Block one IPv4 or IPv6 address or CIDR prefix. Exact addresses go to blocked_ips
# (blocked_ips6), prefixes to blocked_prefixes (blocked_prefixes6); blocking again replaces the TTL. The entry is
# recorded in the state database (vosctl list shows it) in the same order as
# vosctl: state write lock, map, state row, commit.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

usage() { echo "usage: ${0##*/} <ip|cidr (IPv4 or IPv6)> [--ttl SECONDS|30m|2h|7d] [--source NAME] [--pin-dir DIR] [--state-dir DIR]" >&2; exit 2; }

vfp_take_pin_dir "$@"
set -- "${VFP_ARGS[@]}"
if [ $# -lt 1 ] || [[ $1 == -* ]]; then usage; fi
text=$1
shift
ttl=0 source=manual
while (($#)); do
	case $1 in
	--ttl) [ $# -ge 2 ] || usage; ttl=$(vfp_parse_ttl "$2"); shift 2 ;;
	--source) [ $# -ge 2 ] || usage; source=$2; shift 2 ;;
	*) usage ;;
	esac
done
vfp_require_maps
vfp_validate_one "$text" 1 || vfp_die 2 "$VFP_ERROR"
source_id=$(vfp_source_id "$source")
map=$(vfp_block_map "$VFP_PREFIXLEN" "$VFP_CANON")
vfp_state_begin
# shellcheck disable=SC2046,SC2086 # hex byte lists, split on purpose
if ! err=$(bpftool map update pinned "$map" key hex $VFP_KEY value hex $(vfp_block_value "$ttl" "$source_id") 2>&1); then
	case $err in
	*"Argument list too long"* | *E2BIG* | *"No space"*) vfp_die 1 "$(vfp_full_error "$map")" ;;
	*) vfp_die 1 "bpftool could not block $VFP_CANON: $err" ;;
	esac
fi
sql=$(printf '%s\n' "$VFP_CANON" | vfp_state_put_sql "$source" "$ttl")
vfp_state_sql "$sql" || vfp_die 1 "the state database $(vfp_state_db) could not record $VFP_CANON: $VFP_SQL_OUT (the map has it; a reboot would lose it)"
vfp_state_commit "blocked $VFP_CANON"
if ((ttl > 0)); then echo "blocked $VFP_CANON for ${ttl}s"; else echo "blocked $VFP_CANON"; fi
vfp_exit 0
