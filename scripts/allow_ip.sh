#!/usr/bin/env bash
# Add an address or prefix to the never-block allowlist (allow_ips).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
vfp_mark_main allow_ips add "${0##*/} <ip|cidr (IPv4 or IPv6)> [--pin-dir DIR]" "$@"
