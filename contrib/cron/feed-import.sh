#!/usr/bin/env bash
# Import a threat feed as the whole set of one source: fetch it (http, https)
# or read it (a local path), then `vosctl load-file --replace --source NAME`.
# A feed that fails to download or comes back (nearly) empty changes nothing:
# an outage at the feed must not unblock everything it listed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../../scripts/lib.sh
. "$here/../../scripts/lib.sh"
vosctl=${VOSCTL:-$here/../../bin/vosctl}

usage() { echo "usage: ${0##*/} <url|file> <source> [--ttl 1d] [--min-entries N]" >&2; exit 2; }

[ $# -ge 2 ] || usage
feed=$1 source=$2
shift 2
ttl=() min_entries=1
while (($#)); do
	case $1 in
	--ttl) [ $# -ge 2 ] || usage; ttl=(--ttl "$2"); shift 2 ;;
	--min-entries)
		if [ $# -lt 2 ] || ! [[ $2 =~ ^[0-9]+$ ]]; then usage; fi
		min_entries=$2
		shift 2
		;;
	*) usage ;;
	esac
done
vfp_valid_source_name "$source" || { echo "${0##*/}: bad source name '$source'" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
case $feed in
http://* | https://*)
	if ! curl -fsS --max-time 60 --retry 2 -o "$work/feed" "$feed"; then
		echo "${0##*/}: could not fetch $feed; source '$source' left as it was" >&2
		exit 1
	fi
	;;
*)
	[ -r "$feed" ] || { echo "${0##*/}: cannot read '$feed'" >&2; exit 2; }
	cp -- "$feed" "$work/feed"
	;;
esac
entries=$(grep -cvE '^[[:space:]]*(#|$)' "$work/feed" || true)
if [ "$entries" -lt "$min_entries" ]; then
	echo "${0##*/}: $feed has $entries entries (fewer than $min_entries); source '$source' left as it was" >&2
	exit 1
fi
# not exec: the EXIT trap must still remove the download
"$vosctl" load-file "$work/feed" --replace --source "$source" "${ttl[@]}"
