#!/usr/bin/env bash
# Push a blocklist to every node of a cluster over SSH and apply it there as
# the whole set of one source (vosctl load-file --replace: new entries first,
# then that source's entries no longer listed are removed; other sources are
# untouched). The push alternative to running a consumer on every node.
#
# Lines are checked here first: a bad line is reported with its number and
# not sent; every node gets the same good lines. Each node still applies its
# own rules (its allowlist, its own addresses). One SSH connection per node,
# all nodes at once; one result line per node; exit 1 if any node failed or
# any line was bad.
#
# Environment: VOS_CLUSTER_HOSTS (hosts, space or comma separated, when none
# are given), VOS_SSH_OPTS (extra ssh options, e.g. "-i key -p 2222"),
# VOS_REMOTE_VOSCTL (vosctl on the nodes; default: vosctl in their PATH).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

usage() { echo "usage: ${0##*/} <file|-> [--source NAME] [--ttl 30m] [--] [[user@]host ...]   (hosts also from VOS_CLUSTER_HOSTS)" >&2; exit 2; }

[ $# -ge 1 ] || usage
case $1 in -h | --help) usage ;; esac
file=$1
shift
source=feed ttl=""
hosts=()
while (($#)); do
	case $1 in
	--source) [ $# -ge 2 ] || usage; source=$2; shift 2 ;;
	--ttl) [ $# -ge 2 ] || usage; ttl=$(vfp_parse_ttl "$2"); shift 2 ;;
	--) shift; hosts+=("$@"); break ;;
	-*) usage ;;
	*) hosts+=("$1"); shift ;;
	esac
done
if [ ${#hosts[@]} -eq 0 ] && [ -n "${VOS_CLUSTER_HOSTS:-}" ]; then
	read -ra hosts <<<"${VOS_CLUSTER_HOSTS//,/ }"
fi
[ ${#hosts[@]} -gt 0 ] || vfp_die 2 "no hosts: name them or set VOS_CLUSTER_HOSTS"
if ! vfp_valid_source_name "$source" || [ "$source" = manual ]; then
	vfp_die 2 "bad --source $(vfp_quoted "$source"): a feed name of 1-31 of A-Z a-z 0-9 . _ - (not manual)"
fi
for h in "${hosts[@]}"; do
	[[ $h =~ ^([A-Za-z0-9._-]+@)?[A-Za-z0-9.:_-]+$ ]] || vfp_die 2 "bad host $(vfp_quoted "$h"): [user@]host"
done
[ "$file" = - ] || [ -r "$file" ] || vfp_die 2 "cannot read $(vfp_quoted "$file")"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bad=0
vfp_validate_file "$file" 0 "$work/checked" || bad=1
awk '{ print $2 }' "$work/checked" >"$work/list"
count=$(wc -l <"$work/list")

ssh_opts=(-o BatchMode=yes -o ConnectTimeout=10)
if [ -n "${VOS_SSH_OPTS:-}" ]; then
	read -ra extra <<<"$VOS_SSH_OPTS"
	ssh_opts+=("${extra[@]}")
fi
remote=("${VOS_REMOTE_VOSCTL:-vosctl}" load-file - --replace --source "$source")
[ -n "$ttl" ] && remote+=(--ttl "$ttl")
# ssh hands the remote shell one string: quote every word of it.
printf -v remote_cmd '%q ' "${remote[@]}"

for i in "${!hosts[@]}"; do
	# shellcheck disable=SC2029 # remote_cmd is expanded here on purpose, quoted above
	ssh "${ssh_opts[@]}" "${hosts[$i]}" "$remote_cmd" <"$work/list" >"$work/out.$i" 2>"$work/err.$i" &
	echo $! >"$work/pid.$i"
done
failed=0
for i in "${!hosts[@]}"; do
	rc=0
	wait "$(cat "$work/pid.$i")" || rc=$?
	if [ "$rc" -eq 0 ]; then
		echo "${hosts[$i]}: ok: $(tail -n 1 "$work/out.$i")"
	else
		failed=$((failed + 1))
		echo "${hosts[$i]}: FAILED (exit $rc): $(tr '\n' ' ' <"$work/err.$i" | cut -c1-400)"
	fi
done
note=""
((bad)) && note=", bad lines skipped (see above)"
echo "${0##*/}: $count entries of source '$source' to ${#hosts[@]} hosts: $((${#hosts[@]} - failed)) ok, $failed failed$note"
if ((failed)) || ((bad)); then exit 1; fi
