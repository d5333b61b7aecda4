#!/usr/bin/env bash
# The main job on a lab namespace: an attacker scans and floods a SIP port, a
# customer registers, vos-fastpath drops the attacker at the NIC (XDP on a
# veth) and the customer never notices. Everything it creates is removed on exit.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)

usage() { echo "usage: ${0##*/}   (as root; npm run demo sets up first)" >&2; exit 2; }
[ $# -eq 0 ] || usage
[ "$(id -u)" -eq 0 ] || { echo "${0##*/}: run as root (XDP and network namespaces need it)" >&2; exit 3; }

tag=$$
ns=vfp-demo$tag host=vfd$tag peer=vfe$tag
subnet=10.201.$((tag % 200 + 20))
server=$subnet.1 attacker=$subnet.66 customer=$subnet.10
export VOS_PIN_DIR=/sys/fs/bpf/vfp_demo_$tag
export VOS_STATE_DIR=/tmp/vfp-demo-$tag
export VOS_LOG_LEVEL=warn
vosctl=$top/bin/vosctl
sink_pid=""

cleanup() {
	[ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null
	ip link del "$host" 2>/dev/null || true
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$VOS_PIN_DIR" "$VOS_STATE_DIR" "${sink_out:-}"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
send() { # FROM METHOD COUNT
	ip netns exec "$ns" node "$here/lab/sip-send.mjs" "$server" 5060 --from "$1" --method "$2" --count "$3" --gap 2
}
counts() { # ask the sink for its per-source counts
	kill -USR1 "$sink_pid"
	sleep 0.3
	tail -n 1 "$sink_out"
}
received() { counts | jq -r --arg ip "$1" '.[$ip] // 0'; }

say "Lab: namespace $ns holds the attacker ($attacker) and a customer ($customer); the SIP server listens on $server:5060"
ip netns add "$ns"
ip link add "$host" type veth peer name "$peer"
ip link set "$peer" netns "$ns"
ip addr add "$server/24" dev "$host"
ip link set "$host" up
ip -n "$ns" addr add "$attacker/24" dev "$peer"
ip -n "$ns" addr add "$customer/24" dev "$peer"
ip -n "$ns" link set "$peer" up
ip -n "$ns" link set lo up
sink_out=$(mktemp)
node "$here/lab/sip-sink.mjs" "$server" 5060 >"$sink_out" &
sink_pid=$!
sleep 0.5

say "Attach vos-fastpath (native XDP) to $host"
"$vosctl" attach "$host" --mode native

say "The attacker scans with OPTIONS: stealth drops them, the server never answers"
send "$attacker" OPTIONS 20
echo "server received from the attacker: $(received "$attacker") of 20 OPTIONS"

say "The attacker floods REGISTERs: the SIP server sees them and decides the source is bad"
send "$attacker" REGISTER 50
seen=$(received "$attacker")
echo "server received from the attacker: $seen REGISTERs"

say "Block it: vosctl block $attacker --ttl 1h --reason 'REGISTER flood'"
"$vosctl" block "$attacker" --ttl 1h --reason 'REGISTER flood' --source demo
"$vosctl" list

say "The attacker tries again: every packet dies at the NIC"
send "$attacker" REGISTER 50
echo "server received from the attacker since the block: $(($(received "$attacker") - seen)) of 50"

say "The customer registers throughout, unharmed"
send "$customer" REGISTER 10
echo "server received from the customer: $(received "$customer") of 10"

say "Counters (vosctl stats)"
"$vosctl" stats

say "Done; removing the lab (namespace, link, maps, state)"
