#!/usr/bin/env bash
# Remove one address or prefix from the blocklist: the map and the state
# database, in vosctl's order (state write lock, map, state row, commit).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

usage() { echo "usage: ${0##*/} <ip|cidr (IPv4 or IPv6)> [--pin-dir DIR] [--state-dir DIR]" >&2; exit 2; }

vfp_take_pin_dir "$@"
set -- "${VFP_ARGS[@]}"
if [ $# -ne 1 ] || [[ $1 == -* ]]; then usage; fi
vfp_validate_one "$1" remove || vfp_die 2 "$VFP_ERROR"
vfp_require_maps
vfp_state_begin
in_map=1
# shellcheck disable=SC2086 # hex byte list, split on purpose
bpftool map delete pinned "$(vfp_block_map "$VFP_PREFIXLEN" "$VFP_CANON")" key hex $VFP_KEY 2>/dev/null || in_map=0
vfp_state_sql "DELETE FROM entries WHERE target = $(vfp_sql_text "$VFP_CANON") RETURNING target;" ||
	vfp_die 1 "the state database $(vfp_state_db) could not remove $VFP_CANON: $VFP_SQL_OUT"
in_state=0
[ -z "$VFP_SQL_OUT" ] || in_state=1
vfp_state_commit "unblocked $VFP_CANON"
((in_map || in_state)) || vfp_die 1 "$VFP_CANON is not blocked"
echo "unblocked $VFP_CANON"
vfp_exit 0
