#!/usr/bin/env bash
# Attach vos-fastpath to an interface. The pinned maps are created when missing
# and reused when present, so a reload or an upgrade keeps every entry.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

usage() {
	cat >&2 <<USAGE
usage: ${0##*/} <iface>|--no-attach [--mode native|skb] [--pin-dir DIR] [--ports 5060[,5061...]]
                [--scope all|sip] [--block-capacity N] [--prefix-capacity N]
                [--block-capacity6 N] [--prefix-capacity6 N]
                [--no-stealth] [--no-malformed] [--shadow] [--priority N] [--obj FILE]
USAGE
	exit 2
}

vfp_take_pin_dir "$@"
set -- "${VFP_ARGS[@]}"
[ $# -ge 1 ] || usage
iface=$1
shift
# --no-attach loads and pins program and maps only: for tests (bpftool prog run)
# and for preparing a host before the attach.
if [ "$iface" = --no-attach ]; then
	iface=""
elif [[ $iface == -* ]]; then
	usage # --help, or an option where the interface belongs
elif ! [[ $iface =~ ^[A-Za-z0-9._@-]{1,15}$ ]]; then
	vfp_die 2 "bad interface name $(vfp_quoted "$iface")"
fi
mode=native ports=5060 scope=all stealth=1 malformed=1 shadow=0 priority=5
block_cap=262144 prefix_cap=65536 block_cap6="" prefix_cap6=""
obj=${VOS_XDP_OBJ:-$here/../build/vos_fastpath.bpf.o}
while (($#)); do
	[ $# -ge 1 ] || usage
	case $1 in
	--mode) mode=${2:-}; shift 2 || usage ;;
	--ports) ports=${2:-}; shift 2 || usage ;;
	--scope) scope=${2:-}; shift 2 || usage ;;
	--block-capacity) block_cap=${2:-}; shift 2 || usage ;;
	--prefix-capacity) prefix_cap=${2:-}; shift 2 || usage ;;
	--block-capacity6) block_cap6=${2:-}; shift 2 || usage ;;
	--prefix-capacity6) prefix_cap6=${2:-}; shift 2 || usage ;;
	--obj) obj=${2:-}; shift 2 || usage ;;
	--priority) priority=${2:-}; shift 2 || usage ;;
	--no-stealth) stealth=0; shift ;;
	--no-malformed) malformed=0; shift ;;
	--shadow) shadow=1; shift ;;
	*) usage ;;
	esac
done

case $mode in native | skb) ;; *) vfp_die 2 "bad --mode $(vfp_quoted "$mode"): native or skb" ;; esac
# libxdp's dispatcher runs programs by priority, lower first.
if ! [[ $priority =~ ^[1-9][0-9]{0,2}$ ]]; then vfp_die 2 "bad --priority $(vfp_quoted "$priority"): 1 to 999, lower runs first"; fi
xdp_tool=${VOS_XDP_TOOL:-$here/../build/vfp-xdp}
case $scope in all | sip) ;; *) vfp_die 2 "bad --scope $(vfp_quoted "$scope"): all or sip" ;; esac
# The IPv6 maps are sized like their IPv4 twins unless told otherwise.
block_cap6=${block_cap6:-$block_cap} prefix_cap6=${prefix_cap6:-$prefix_cap}
for n in "$block_cap" "$prefix_cap" "$block_cap6" "$prefix_cap6"; do
	if ! [[ $n =~ ^[1-9][0-9]{0,8}$ ]] || ((n > 67108864)); then vfp_die 2 "bad capacity $(vfp_quoted "$n"): 1 to 67108864"; fi
done
IFS=, read -r -a port_list <<<"$ports"
((${#port_list[@]} >= 1 && ${#port_list[@]} <= 16)) || vfp_die 2 "bad --ports $(vfp_quoted "$ports"): 1 to 16 ports"
for p in "${port_list[@]}"; do
	if ! [[ $p =~ ^[1-9][0-9]{0,4}$ ]] || ((p > 65535)); then vfp_die 2 "bad port $(vfp_quoted "$p") in --ports"; fi
done
[ -r "$obj" ] || vfp_die 3 "no XDP object at $obj; run 'make -C xdp' or scripts/setup.sh"
if [ -n "$iface" ] && ! ip link show dev "$iface" >/dev/null 2>&1; then vfp_die 2 "no interface $(vfp_quoted "$iface")"; fi
[ "$(id -u)" -eq 0 ] || vfp_die 3 "must run as root"

vfp_mount_bpffs
dir=$(vfp_pin_dir)
mkdir -p "$dir"

# name type key value entries flags
maps=(
	"blocked_ips hash 4 16 $block_cap 0"
	"blocked_prefixes lpm_trie 8 16 $prefix_cap 1"
	"allow_ips lpm_trie 8 4 16384 1"
	"options_allow lpm_trie 8 4 16384 1"
	"blocked_ips6 hash 16 16 $block_cap6 0"
	"blocked_prefixes6 lpm_trie 20 16 $prefix_cap6 1"
	"allow_ips6 lpm_trie 20 4 16384 1"
	"options_allow6 lpm_trie 20 4 16384 1"
	"config array 4 40 1 0"
	"stats percpu_array 4 16 24 0"
	"xsks_map xskmap 4 4 64 0"
	"source_names array 4 32 256 0"
)
map_args=()
for m in "${maps[@]}"; do
	read -r name type key value entries flags <<<"$m"
	path="$dir/$name"
	# An upgrade that adds counter reasons needs a bigger stats map: counters restart, entries are kept.
	if [ "$name" = stats ] && [ -e "$path" ] && [ "$(vfp_map_capacity "$path")" != "$entries" ]; then
		rm -f "$path"
	fi
	if [ -e "$path" ]; then
		have=$(vfp_map_capacity "$path")
		if [ "$have" != "$entries" ] && [[ $name == blocked_* ]]; then
			echo "${0##*/}: keeping $name with its $have entries capacity (asked: $entries); unload --purge to change it" >&2
		fi
	else
		bpftool map create "$path" type "$type" key "$key" value "$value" entries "$entries" name "$name" flags "$flags" ||
			vfp_die 1 "cannot create map $name in $dir"
	fi
	# source_names is for user space only: the program has no such map to bind.
	[ "$name" = source_names ] || map_args+=(map name "$name" pinned "$path")
done

flags=0
[ "$scope" = sip ] && flags=$((flags | 1))
((stealth)) && flags=$((flags | 2))
((malformed)) && flags=$((flags | 4))
((shadow)) && flags=$((flags | 8))
cfg="$(vfp_hex_u32_le "$flags") $(vfp_hex_u32_le "${#port_list[@]}")"
for ((i = 0; i < 16; i++)); do cfg+=" $(vfp_hex_u16_le "${port_list[i]:-0}")"; done
# shellcheck disable=SC2086
bpftool map update pinned "$dir/config" key hex 00 00 00 00 value hex $cfg

if [ -z "$iface" ]; then
	# Load and pin only, as a plain XDP program that bpftool prog run can drive.
	if [ -e "$dir/prog_next" ]; then rm -f "$dir/prog_next"; fi
	bpftool prog load "$obj" "$dir/prog_next" type xdp "${map_args[@]}" ||
		vfp_die 1 "the kernel refused the XDP program (see the verifier log above)"
	mv -f "$dir/prog_next" "$dir/prog"
	echo "loaded vos-fastpath (not attached; maps in $dir)"
	exit 0
fi
# Through libxdp's dispatcher (vfp-xdp): other XDP programs on the interface
# keep running. The new program goes in beside the old one, then the old one
# leaves, so the blocklist never stops; the maps are the pinned ones.
[ -x "$xdp_tool" ] || vfp_die 3 "no $xdp_tool; run 'make -C xdp' or scripts/setup.sh"
set +e
attached=$("$xdp_tool" attach "$iface" "$obj" "$dir" "$mode" "$priority")
rc=$?
set -e
case $rc in
0) ;;
2 | 3) exit "$rc" ;;
*) vfp_die 1 "cannot attach to $iface in $mode mode" ;;
esac
read -r prog_id how <<<"$attached"
if [ "$how" = dispatcher ]; then
	how="through libxdp's dispatcher, priority $priority"
else
	how="alone: this kernel refuses the freplace programs libxdp's dispatcher needs, so no other XDP program can join it on $iface"
fi
echo "attached vos-fastpath to $iface ($mode mode, program $prog_id, $how; maps in $dir, ports $ports, scope $scope, stealth $stealth, malformed $malformed, shadow $shadow)"
