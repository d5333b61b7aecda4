#!/usr/bin/env bash
# Add an address or prefix to the OPTIONS allow set (options_allow).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
vfp_mark_main options_allow add "${0##*/} <ip|cidr (IPv4 or IPv6)> [--pin-dir DIR]" "$@"
