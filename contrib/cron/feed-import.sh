#!/usr/bin/env bash
# Import a threat feed as the whole set of one source, with
# `vosctl load-file --replace --source NAME`. A feed that fails to download or
# comes back (nearly) empty changes nothing: an outage at the feed must not
# unblock everything it listed. Special-purpose addresses a feed should not
# carry (private, shared, documentation, ... and IPv6 for now) are skipped and
# reported; a line that is no address at all fails the run (the rest is loaded).
# An answer that is not a list (an error page served with HTTP 200: more bad
# lines than addresses) or that would remove more than --max-shrink of the
# source's entries (default 0.5: half) changes nothing and exits 1; when a feed
# really shrank, run once with --force (or a higher --max-shrink).
#
#   feed-import.sh <url|file> <source> [--format plain|voipbl] [--ttl 1d] [--min-entries N]
#                  [--max-shrink F] [--force]
#       a list of addresses/CIDRs (VoIPBL: https://www.voipbl.org/update/)
#   feed-import.sh apiban <source> [--url URL] [--key-file FILE] [--state-dir DIR]
#                  [--full] [--refresh-after SECONDS] [--max-pages N] [--ttl 1d]
#                  [--max-shrink F] [--force]
#       APIBAN, incrementally: pages from the last ID kept in the state folder,
#       1 s apart (APIBAN rate-limits; "rate limit exceeded" ends the run early
#       and the next run goes on from the saved ID). The pages since the last
#       full fetch are the source's set; a full fetch (from ID 100) replaces
#       them every --refresh-after seconds (default a day) so delisted
#       addresses leave. The key is read from --key-file (default
#       /etc/vos-fastpath/apiban.key) or APIBAN_KEY, never put on a command line.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../../scripts/lib.sh
. "$here/../../scripts/lib.sh"
vosctl=${VOSCTL:-$here/../../bin/vosctl}
me=${0##*/}

usage() {
	cat >&2 <<USAGE
usage: $me <url|file> <source> [--format plain|voipbl] [--ttl 1d] [--min-entries N]
                  [--max-shrink F] [--force]
       $me apiban <source> [--url URL] [--key-file FILE] [--state-dir DIR] [--full]
                  [--refresh-after SECONDS] [--max-pages N] [--ttl 1d] [--max-shrink F] [--force]
USAGE
	exit 2
}

[ $# -ge 2 ] || usage
feed=$1 source=$2
shift 2
ttl=() min_entries=1 format=plain max_shrink=0.5
api_url=https://apiban.org/api/get key_file=/etc/vos-fastpath/apiban.key
state_dir=${VOS_STATE_DIR:-/var/lib/vos-fastpath}/feeds full=0 refresh_after=86400 max_pages=200
number() { [[ ${1:-} =~ ^[0-9]+$ ]] || usage; }
while (($#)); do
	case $1 in
	--ttl) [ $# -ge 2 ] || usage; ttl=(--ttl "$2"); shift 2 ;;
	--min-entries) number "${2:-}"; min_entries=$2; shift 2 ;;
	--max-shrink)
		[[ ${2:-} =~ ^(0(\.[0-9]+)?|1(\.0*)?)$ ]] || usage
		max_shrink=$2
		shift 2
		;;
	--force) max_shrink=1; shift ;;
	--format)
		case ${2:-} in plain | voipbl) format=$2 ;; *) usage ;; esac
		shift 2
		;;
	--url) [ $# -ge 2 ] || usage; api_url=$2; shift 2 ;;
	--key-file) [ $# -ge 2 ] || usage; key_file=$2; shift 2 ;;
	--state-dir) [ $# -ge 2 ] || usage; state_dir=$2; shift 2 ;;
	--full) full=1; shift ;;
	--refresh-after) number "${2:-}"; refresh_after=$2; shift 2 ;;
	--max-pages) number "${2:-}"; max_pages=$2; shift 2 ;;
	*) usage ;;
	esac
done
vfp_valid_source_name "$source" || { echo "$me: bad source name '$source'" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# APIBAN: fetch the pages after $1 into $work/new (one JSON document per page).
# Prints the last ID reached. Exit 1 on a failure that must change nothing.
apiban_fetch() {
	local id=$1 page=0 code body=$work/body id_re='"ID"[[:space:]]*:[[:space:]]*"([^"]*)"'
	: >"$work/new"
	while ((page < max_pages)); do
		((page > 0)) && sleep "${APIBAN_PAGE_DELAY:-1}"
		page=$((page + 1))
		if ! code=$(curl -sS --max-time 30 -o "$body" -w '%{http_code}' -H @"$work/auth" \
			-H 'Content-Type: application/json' --data "{\"set\":\"sip\",\"id\":\"$id\"}" "$api_url"); then
			echo "$me: could not fetch $api_url; source '$source' left as it was" >&2
			return 1
		fi
		if grep -q 'no new bans' "$body"; then break; fi
		if grep -q 'rate limit exceeded' "$body"; then
			echo "$me: APIBAN rate limit reached after $((page - 1)) page(s); applying those, the next run goes on from ID $id" >&2
			break
		fi
		if grep -q '"unauthorized"' "$body" || [ "$code" = 401 ] || [ "$code" = 403 ]; then
			echo "$me: APIBAN refused the key (unauthorized); source '$source' left as it was" >&2
			return 1
		fi
		if [ "$code" != 200 ] || ! [[ $(tr -d '\n' <"$body") =~ $id_re ]]; then
			echo "$me: unexpected APIBAN answer (HTTP $code): $(head -c 200 "$body"); source '$source' left as it was" >&2
			return 1
		fi
		[ "${BASH_REMATCH[1]}" = none ] && break
		cat "$body" >>"$work/new"
		echo >>"$work/new"
		id=${BASH_REMATCH[1]}
	done
	echo "$id"
}

if [ "$feed" = apiban ]; then
	if [ -z "${APIBAN_KEY:-}" ]; then
		[ -r "$key_file" ] || { echo "$me: no APIBAN key: set APIBAN_KEY or put it in $key_file" >&2; exit 2; }
		APIBAN_KEY=$(tr -d '[:space:]' <"$key_file")
	fi
	(umask 077 && printf 'Authorization: Bearer %s\n' "$APIBAN_KEY" >"$work/auth")
	mkdir -p "$state_dir"
	ids=$state_dir/apiban-$source.id pages=$state_dir/apiban-$source.pages since=$state_dir/apiban-$source.full
	now=$(date +%s)
	last=100
	if ((full == 0)) && [ -s "$ids" ] && [ -s "$pages" ] && [ -s "$since" ] && (($(cat "$since") + refresh_after > now)); then
		last=$(cat "$ids")
	fi
	next=$(apiban_fetch "$last")
	if [ "$last" = 100 ]; then
		# A full fetch is the whole set; one that brought nothing is an outage, not an empty list.
		if ! grep -q '[0-9]' "$work/new"; then
			echo "$me: APIBAN full fetch returned no addresses; source '$source' left as it was" >&2
			exit 1
		fi
		cp "$work/new" "$work/set"
		echo "$now" >"$work/since"
	else
		cat "$pages" "$work/new" >"$work/set"
		cp "$since" "$work/since"
	fi
	rc=0
	"$vosctl" load-file "$work/set" --format apiban --replace --max-shrink "$max_shrink" --source "$source" "${ttl[@]}" || rc=$?
	# 2: some entries were bad (reported) and every good one applied: the set stands.
	if [ "$rc" = 0 ] || [ "$rc" = 2 ]; then
		mv "$work/set" "$pages"
		mv "$work/since" "$since"
		echo "$next" >"$ids"
	fi
	exit "$rc"
fi

case $feed in
http://* | https://*)
	if ! curl -fsS --max-time 60 --retry 2 -o "$work/feed" "$feed"; then
		echo "$me: could not fetch $feed; source '$source' left as it was" >&2
		exit 1
	fi
	;;
*)
	[ -r "$feed" ] || { echo "$me: cannot read '$feed'" >&2; exit 2; }
	cp -- "$feed" "$work/feed"
	;;
esac
entries=$(grep -cvE '^[[:space:]]*(#|$)' "$work/feed" || true)
if [ "$entries" -lt "$min_entries" ]; then
	echo "$me: $feed has $entries entries (fewer than $min_entries); source '$source' left as it was" >&2
	exit 1
fi
# not exec: the EXIT trap must still remove the download
"$vosctl" load-file "$work/feed" --format "$format" --skip-special --replace --max-shrink "$max_shrink" --source "$source" "${ttl[@]}"
