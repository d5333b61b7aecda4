#!/usr/bin/env bash
# The main job on a lab namespace, the whole loop with real peers: a customer
# registers with Kamailio while an attacker floods it; Kamailio's pike
# publishes "block this IP" to RabbitMQ; vosctl consume puts it in the XDP
# map; the attacker's packets die at the NIC; the customer never notices.
# Everything it creates (namespace, link, maps, state, queue, processes) is
# removed when it ends, however it ends.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)

usage() { echo "usage: ${0##*/}   (as root; npm run demo sets up first)" >&2; exit 2; }
[ $# -eq 0 ] || usage
[ "$(id -u)" -eq 0 ] || { echo "${0##*/}: run as root (XDP and network namespaces need it)" >&2; exit 3; }
for tool in kamailio sipp amqp-delete-queue jq; do
	command -v "$tool" >/dev/null || { echo "${0##*/}: $tool is missing; run scripts/setup.sh" >&2; exit 3; }
done

tag=$$
ns=vfp-demo$tag host=vfd$tag peer=vfe$tag
subnet=10.201.$((tag % 200 + 20))
server=$subnet.1 attacker=$subnet.66 customer=$subnet.10
queue=vfp_demo_$tag
work=$(mktemp -d /tmp/vfp-demo-XXXXXX)
export VOS_PIN_DIR=/sys/fs/bpf/vfp_demo_$tag
export VOS_STATE_DIR=$work/state
export VOS_LOG_FORMAT=json
vosctl=$top/bin/vosctl
pids=()

cleanup() {
	local pid
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	sleep 0.5
	for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
	amqp-delete-queue -q "$queue" >/dev/null 2>&1 || true
	amqp-delete-queue -q "$queue.dead" >/dev/null 2>&1 || true
	ip link del "$host" 2>/dev/null || true
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$VOS_PIN_DIR" "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
now_ms() { date +%s%3N; }
wait_for() { # FILE PATTERN SECONDS: the first matching line
	local i
	for ((i = 0; i < $3 * 100; i++)); do
		grep -m1 -E "$2" "$1" 2>/dev/null && return 0
		sleep 0.01
	done
	echo "${0##*/}: gave up waiting for '$2' in $1" >&2
	tail -n 5 "$1" >&2
	return 1
}
seen_from() { grep -c "vos-trace: .* from $1:" "$work/kamailio.log" || true; }
counter() { "$vosctl" stats --json | jq -r ".$1.packets"; }

say "Lab: namespace $ns holds an attacker ($attacker) and a customer ($customer); Kamailio listens on $server:5060"
ip netns add "$ns"
ip link add "$host" type veth peer name "$peer"
ip link set "$peer" netns "$ns"
ip addr add "$server/24" dev "$host"
ip link set "$host" up
ip -n "$ns" addr add "$attacker/24" dev "$peer"
ip -n "$ns" addr add "$customer/24" dev "$peer"
ip -n "$ns" link set "$peer" up
ip -n "$ns" link set lo up

say "Attach vos-fastpath (native XDP) to $host; start vosctl consume --queue $queue"
VOS_LOG_LEVEL=warn "$vosctl" attach "$host" --mode native
"$vosctl" consume --queue "$queue" 2>"$work/consume.log" &
pids+=($!)
wait_for "$work/consume.log" '"consuming"' 15 >/dev/null

say "Start Kamailio with contrib/kamailio/kamailio.cfg (pike publishes blocks to $queue)"
kamailio -f "$top/contrib/kamailio/kamailio.cfg" -l "udp:$server:5060" -n 2 -DD -E \
	-A VOS_TRACE -A "VOS_ROUTING_KEY=\"$queue\"" -P "$work/kamailio.pid" -Y "$work" >/dev/null 2>"$work/kamailio.log" &
pids+=($!)
for _ in $(seq 100); do ss -lun | grep -q "$server:5060" && break; sleep 0.1; done

say "The customer registers every 250 ms and keeps doing so"
ip netns exec "$ns" sipp -sf "$here/lab/register.xml" "$server:5060" -i "$customer" -p 5061 -s alice \
	-key contact_port 5062 -r 4 -m 40 -nostdin -timeout 30 >/dev/null 2>&1 &
customer_pid=$!
pids+=("$customer_pid")
sleep 1

say "The attacker floods INVITEs at 300 per second"
ip netns exec "$ns" sipp -sn uac "$server:5060" -i "$attacker" -p 5080 -s nobody -r 300 -m 6000 -nostdin -timeout 30 >/dev/null 2>&1 &
pids+=($!)
line=$(wait_for "$work/kamailio.log" "published block for $attacker" 15)
published=$(now_ms)
echo "Kamailio saw $(seen_from "$attacker") requests from the attacker; its pike decided:"
echo "  ${line##*<script>: }"

say "The block travels Kamailio -> RabbitMQ -> vosctl consume -> map"
landed=$(wait_for "$work/consume.log" "\"ip\":\"$attacker\"" 15)
echo "  vosctl consume: $(jq -r '"\(.message) \(.ip) ttl \(.ttl_s)s from \(.source), reason \(.reason), message \(.msg_id) on \(.queue)"' <<<"$landed")"
echo "  in the map about $(($(now_ms) - published)) ms after Kamailio published (as this script saw it)"
"$vosctl" list

say "The attacker's packets die at the NIC"
sleep 0.3
before=$(seen_from "$attacker") drops=$(counter blocked_exact)
sleep 2
echo "  in the last 2 s: Kamailio saw $(($(seen_from "$attacker") - before)) requests from the attacker; XDP dropped $(($(counter blocked_exact) - drops))"

say "Counters (vosctl stats)"
"$vosctl" stats

say "The customer, unharmed"
rc=0
wait "$customer_pid" || rc=$?
if [ "$rc" -eq 0 ]; then
	echo "  all 40 registrations answered 200 OK; Kamailio saw $(seen_from "$customer") requests from the customer"
else
	echo "  the customer's sipp exited $rc: some registrations failed" >&2
	exit 1
fi

say "Done; removing the lab (processes, namespace, link, maps, state, queue)"
