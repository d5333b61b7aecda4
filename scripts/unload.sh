#!/usr/bin/env bash
# Detach vos-fastpath from an interface. The maps stay pinned (a later load
# picks them up again) unless --purge is given.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

usage() { echo "usage: ${0##*/} <iface> [--pin-dir DIR] [--purge]" >&2; exit 2; }

vfp_take_pin_dir "$@"
set -- "${VFP_ARGS[@]}"
[ $# -ge 1 ] || usage
[[ $1 != -* ]] || usage # --help, or an option where the interface belongs
iface=$1
shift
purge=0
while (($#)); do
	case $1 in
	--purge) purge=1; shift ;;
	*) usage ;;
	esac
done
[[ $iface =~ ^[A-Za-z0-9._@-]{1,15}$ ]] || vfp_die 2 "bad interface name $(vfp_quoted "$iface")"
dir=$(vfp_pin_dir)

xdp_tool=${VOS_XDP_TOOL:-$here/../build/vfp-xdp}
[ -x "$xdp_tool" ] || vfp_die 3 "no $xdp_tool; run 'make -C xdp' or scripts/setup.sh"
if ip link show dev "$iface" >/dev/null 2>&1; then
	# Only this pin folder's vos-fastpath leaves the dispatcher; other programs
	# (another instance's included: exit 3, named by vfp-xdp) stay attached.
	rc=0
	n=$("$xdp_tool" detach "$iface" "$dir") || rc=$?
	((rc == 0)) || vfp_die "$((rc == 3 ? 3 : 1))" "cannot detach from $iface (above)"
	if ((n > 0)); then echo "detached from $iface"; else echo "vos-fastpath was not attached to $iface"; fi
else
	echo "${0##*/}: no interface $(vfp_quoted "$iface"); nothing to detach" >&2
fi

if ((purge)); then
	# The same judgement as load.sh's: a folder on a bpffs (load.sh mounts one
	# where --pin-dir is not), so only pins are ever removed.
	if [ ! -e "$dir" ]; then
		echo "nothing to purge: no $dir"
	elif [ "$(stat -f -c %T -- "$dir")" != bpf_fs ]; then
		vfp_die 2 "refusing to purge '$dir': not on a bpffs"
	else
		rm -rf -- "$dir"
		echo "purged $dir"
	fi
elif [ -e "$dir/prog" ]; then
	# The program pin goes once no interface runs it; the maps stay.
	prog_id=$(bpftool -j prog show pinned "$dir/prog" | jq -r .id)
	if ! "$xdp_tool" list | jq -e --argjson id "$prog_id" '[.[].programs[].id] | index($id)' >/dev/null; then
		rm -f "$dir/prog"
	fi
	echo "kept the maps in $dir"
fi
