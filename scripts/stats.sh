#!/usr/bin/env bash
# Print the per-reason counters, summed over CPUs; IPv6 ones end in _ipv6.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

usage() { echo "usage: ${0##*/} [--json] [--pin-dir DIR]" >&2; exit 2; }

vfp_take_pin_dir "$@"
set -- "${VFP_ARGS[@]}"
json=0
while (($#)); do
	case $1 in
	--json) json=1; shift ;;
	*) usage ;;
	esac
done
vfp_require_maps

# Index order of enum vfp_stat in xdp/vfp_maps.h: IPv4 (and not_ip) first, then
# the IPv6 half with "_ipv6" names; null for slots a family never counts.
# unparsed_headers and unjudged are IPv6's only (extension headers; IPv4's headers
# never push a payload past what the SIP checks read).
reasons='["passed","allowlisted","blocked_exact","blocked_prefix","options_dropped","malformed_register","redirected","not_ip","shadow_would_drop","tiny_fragment","unparsed_headers","unjudged"]'
names=$(jq -c '[(.[] | if . == "unparsed_headers" or . == "unjudged" then null else . end), (.[] | if . == "not_ip" then null else . + "_ipv6" end)]' <<<"$reasons")
counters=$(bpftool -j map dump pinned "$(vfp_map stats)" | jq -c --argjson names "$names" "$VFP_JQ_HEX"'
	def u64: .[0:8] | map(h) | reverse | reduce .[] as $b (0; . * 256 + $b);
	map(select($names[(.key | map(h) | .[0])] != null)) |
	map({ name: $names[(.key | map(h) | .[0])],
	      packets: ([.values[].value | u64] | add),
	      bytes: ([.values[].value | .[8:16] | u64] | add) })')
if ((json)); then
	jq -c 'map({ (.name): { packets, bytes } }) | add' <<<"$counters"
else
	jq -r '.[] | "\(.name)\t\(.packets)\t\(.bytes)"' <<<"$counters" |
		awk -F'\t' '
			# The reason column as wide as the longest name (vosctl stats does the same).
			{ name[NR] = $1; packets[NR] = $2; bytes[NR] = $3; if (length($1) > w) w = length($1) }
			END {
				if (w < 6) w = 6
				fmt = "%-" w "s %15s %18s\n" # POSIX awk has no "*" width
				printf fmt, "reason", "packets", "bytes"
				for (i = 1; i <= NR; i++) printf fmt, name[i], packets[i], bytes[i]
			}'
fi
