#!/usr/bin/env bash
# Remove one address or prefix from the blocklist.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

usage() { echo "usage: ${0##*/} <ip|cidr> [--pin-dir DIR]" >&2; exit 2; }

vfp_take_pin_dir "$@"
set -- "${VFP_ARGS[@]}"
if [ $# -ne 1 ] || [[ $1 == -* ]]; then usage; fi
vfp_validate_one "$1" 0 || vfp_die 2 "$VFP_ERROR"
vfp_require_maps
# shellcheck disable=SC2086 # hex byte list, split on purpose
bpftool map delete pinned "$(vfp_block_map "$VFP_PREFIXLEN")" key hex $VFP_KEY 2>/dev/null ||
	vfp_die 1 "$VFP_CANON is not blocked"
echo "unblocked $VFP_CANON"
