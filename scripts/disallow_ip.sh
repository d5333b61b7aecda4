#!/usr/bin/env bash
# Remove an address or prefix from the never-block allowlist (allow_ips).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
vfp_mark_main allow_ips remove "${0##*/} <ip|cidr (IPv4 or IPv6)> [--pin-dir DIR]" "$@"
