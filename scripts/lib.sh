# shellcheck shell=bash
# shellcheck disable=SC2034 # VFP_* results are read by the scripts that source this
# Shared by every script in scripts/: pin folder, address validation, the byte
# encodings of xdp/vfp_maps.h, and the bpftool calls. Sourced, never run.
#
# Exit codes: 2 bad input or usage, 3 environment not ready (no maps, no root,
# no bpftool), 1 anything that failed at run time (a full map, bpftool refused).

VFP_DEFAULT_PIN_DIR=/sys/fs/bpf/vos_fastpath
VFP_MIN_PREFIX=${VOS_MIN_PREFIX:-8}
VFP_MIN_PREFIX6=${VOS_MIN_PREFIX6:-32}
VFP_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VFP_SOURCE_FIRST_FEED=16
VFP_MAX_SOURCES=256
printf -v VFP_NOW '%(%s)T' -1 # Unix seconds, once per script: map value and state row agree

# How a refusal names the operator's value: quoted, cut at 64 characters with
# the length after it ('aaaa…(100000 chars)'), as vosctl's lib/quote.ts does.
vfp_quoted() { # VALUE
	if ((${#1} <= 64)); then printf "'%s'" "$1"; else printf "'%s…(%d chars)'" "${1:0:64}" "${#1}"; fi
}

vfp_die() { # CODE MESSAGE...
	local code=$1
	shift
	printf '%s: %s\n' "${0##*/}" "$*" >&2
	exit "$code"
}

vfp_pin_dir() {
	printf '%s' "${VFP_PIN_DIR:-${VOS_PIN_DIR:-$VFP_DEFAULT_PIN_DIR}}"
}

vfp_map() { # NAME -> pinned path
	printf '%s/%s' "$(vfp_pin_dir)" "$1"
}

vfp_require_maps() {
	local dir
	dir=$(vfp_pin_dir)
	command -v bpftool >/dev/null || vfp_die 3 "bpftool not found; run scripts/setup.sh"
	if ((EUID != 0)) && ! bpftool map show pinned "$dir/blocked_ips" >/dev/null 2>&1; then
		vfp_die 3 "cannot open the maps in $dir as user $(id -un): vos-fastpath needs root (or the capabilities CAP_BPF and CAP_NET_ADMIN, and write access to the pin and state folders)"
	fi
	[ -e "$dir/blocked_ips" ] || vfp_die 3 "no vos-fastpath maps in $dir; run scripts/load.sh <iface> first (or set --pin-dir / VOS_PIN_DIR)"
}

# Mount bpffs on /sys/fs/bpf when nothing is mounted there. Refused when the
# pins would not outlive the command: under `ip netns exec`, which makes a
# private mount namespace and remounts /sys for the network namespace (source:
# its name), so a bpffs mounted there (by us, or by iproute2 itself) and every
# pin in it vanish when the command exits, leaving an attached program whose
# maps no later command finds; also in any other mount namespace than PID 1's
# whose /sys/fs/bpf is not PID 1's bpffs. nsenter --net= enters only the
# network namespace and keeps the host's mounts.
vfp_mount_bpffs() {
	local netns own host why=""
	netns=$(ip netns identify 2>/dev/null) || netns=""
	if [ -n "$netns" ] && [ "$(awk '$2 == "/sys" { src = $1 } END { print src }' /proc/self/mounts)" = "$netns" ]; then
		why="ip netns exec $netns runs this in a private mount namespace with /sys remounted"
	else
		own=$(readlink /proc/self/ns/mnt 2>/dev/null) || own=""
		host=$(readlink /proc/1/ns/mnt 2>/dev/null) || host=""
		if [ -n "$own" ] && [ -n "$host" ] && [ "$own" != "$host" ] &&
			[ "$(stat -c %d /sys/fs/bpf 2>/dev/null)" != "$(stat -c %d /proc/1/root/sys/fs/bpf 2>/dev/null)" ]; then
			why="this runs in a private mount namespace whose /sys/fs/bpf is not the host's bpffs"
		fi
	fi
	[ -z "$why" ] || vfp_die 3 "$why: the pinned maps would vanish when this command exits, and no later command would find them. Enter only the network namespace instead: nsenter --net=/run/netns/${netns:-NAME} vosctl attach IFACE (or scripts/load.sh)"
	if ! mount | grep -q ' /sys/fs/bpf type bpf '; then
		mount -t bpf bpf /sys/fs/bpf || vfp_die 3 "cannot mount bpffs on /sys/fs/bpf"
	fi
}

# jq helper: "0x1f" -> 31, for bpftool's JSON dumps of maps without BTF.
# shellcheck disable=SC2016 # jq code, not shell
VFP_JQ_HEX='def h: ltrimstr("0x") | explode | reduce .[] as $c (0; . * 16 + (if $c >= 97 then $c - 87 elif $c >= 65 then $c - 55 else $c - 48 end));'

vfp_own_addresses() { ip -o addr show 2>/dev/null | awk '$3 == "inet" || $3 == "inet6" { sub("/.*", "", $4); printf "%s ", $4 }'; }

vfp_allow_entries() { # "a.b.c.d/len ... g:g:g:g:g:g:g:g/len ..." from the pinned allowlists, empty when there are none
	local path
	path=$(vfp_map allow_ips)
	[ -e "$path" ] || return 0
	bpftool -j map dump pinned "$path" | jq -r "$VFP_JQ_HEX"' .[] | (.key | map(h)) as $k | "\($k[4]).\($k[5]).\($k[6]).\($k[7])/\($k[0] + 256 * $k[1])"' | tr '\n' ' '
	path=$(vfp_map allow_ips6)
	[ -e "$path" ] || return 0
	# shellcheck disable=SC2016 # jq code, not shell
	bpftool -j map dump pinned "$path" | jq -r '.[] | .key | map(ltrimstr("0x")) as $k | "\([range(4; 20; 2) as $i | $k[$i] + $k[$i + 1]] | join(":"))/\($k[0] | explode | reduce .[] as $c (0; . * 16 + (if $c >= 97 then $c - 87 else $c - 48 end)))"' | tr '\n' ' '
}

# Run scripts/ipv4.awk over lines on stdin (see there for the output).
# BLOCKABLE=1 adds the never-block rules: reserved ranges, minimum prefix,
# this host's addresses and the allowlist. BLOCKABLE=remove is 0 for a
# removal: it also takes an IPv4-compatible address, so an entry added before
# those were refused can still be removed by name (as vosctl's parseRemovable).
vfp_validate_lines() { # BLOCKABLE: 1, 0 or remove
	local own="" allow="" removable=0 blockable=$1
	if [ "$blockable" = 1 ]; then
		own=$(vfp_own_addresses)
		allow=$(vfp_allow_entries)
	elif [ "$blockable" = remove ]; then
		removable=1 blockable=0
	fi
	awk -v blockable="$blockable" -v removable="$removable" -v min_prefix="$VFP_MIN_PREFIX" -v min_prefix6="$VFP_MIN_PREFIX6" -v own="$own" -v allow="$allow" -f "$VFP_SCRIPTS/ipv4.awk"
}

# Validate one address; sets VFP_CANON, VFP_PREFIXLEN and VFP_KEY (the hex key
# for blocked_ips when /32, else the LPM key), or VFP_ERROR and returns 1.
vfp_validate_file() { # FILE|- BLOCKABLE GOOD_OUT: good lines to GOOD_OUT, bad ones reported (VFP_BAD_LINES counts them); 1 if any was bad
	local file=$1 blockable=$2 good=$3 bad rc=0
	bad=$(mktemp)
	if [ "$file" = - ]; then
		vfp_validate_lines "$blockable" >"$good" 2>"$bad" || rc=1
	else
		vfp_validate_lines "$blockable" <"$file" >"$good" 2>"$bad" || rc=1
	fi
	if [ -s "$bad" ]; then sed "s|^|${0##*/}: |" "$bad" >&2; fi
	VFP_BAD_LINES=$(wc -l <"$bad")
	rm -f "$bad"
	return "$rc"
}

vfp_validate_one() { # TEXT BLOCKABLE (1, 0 or remove: see vfp_validate_lines)
	local out
	if [[ $1 == *[[:space:]#]* || -z $1 ]]; then
		VFP_ERROR="$(vfp_quoted "$1") is not an IPv4 or IPv6 address or CIDR"
		return 1
	fi
	local rc=0
	out=$(printf '%s\n' "$1" | vfp_validate_lines "$2" 2>&1) || rc=$?
	if ((rc)); then
		# The validator names a bad line as "line 1: why"; anything else is the validator itself failing (killed, say).
		if [[ $out == "line 1: "* ]]; then VFP_ERROR=${out#line 1: }; else vfp_die 1 "validating '$1' was interrupted: the address validator (awk $VFP_SCRIPTS/ipv4.awk) ended with status $rc${out:+ (${out//$'\n'/ })}; nothing was changed"; fi
		return 1
	fi
	read -r _ VFP_CANON VFP_PREFIXLEN VFP_KEY <<<"$out"
}

vfp_hex_u32_le() { printf '%02x %02x %02x %02x' $(($1 & 255)) $((($1 >> 8) & 255)) $((($1 >> 16) & 255)) $((($1 >> 24) & 255)); }
vfp_hex_u16_le() { printf '%02x %02x' $(($1 & 255)) $((($1 >> 8) & 255)); }
vfp_hex_u64_le() { printf '%s %s' "$(vfp_hex_u32_le $(($1 & 0xffffffff)))" "$(vfp_hex_u32_le $((($1 >> 32) & 0xffffffff)))"; }

vfp_is_v6() { [[ $1 == *:* ]]; } # CANONICAL: only IPv6 text has a colon

# An LPM key for the parsed entry, also when it is a plain address (a /32 or /128).
vfp_lpm_key() {
	if vfp_is_v6 "$VFP_CANON"; then
		if ((VFP_PREFIXLEN == 128)); then printf '80 00 00 00 %s' "$VFP_KEY"; else printf '%s' "$VFP_KEY"; fi
	elif ((VFP_PREFIXLEN == 32)); then printf '20 00 00 00 %s' "$VFP_KEY"; else printf '%s' "$VFP_KEY"; fi
}

# CLOCK_BOOTTIME in ns, the clock the program compares expires_ns with.
# /proc/uptime reads that clock with 10 ms resolution.
vfp_boottime_ns() {
	local up
	read -r up _ </proc/uptime
	printf '%d' "$((10#${up%.*} * 1000000000 + 10#${up#*.} * 10000000))"
}

vfp_block_value() { # TTL_SECONDS SOURCE_ID -> struct vfp_block in hex
	local ttl=$1 source_id=$2 expires=0
	((ttl > 0)) && expires=$(($(vfp_boottime_ns) + ttl * 1000000000))
	printf '%s %s %s 00 00' "$(vfp_hex_u64_le "$expires")" "$(vfp_hex_u32_le "$VFP_NOW")" "$(vfp_hex_u16_le "$source_id")"
}

vfp_mark_value() { vfp_hex_u32_le "$(date +%s)"; }

vfp_parse_ttl() { # TEXT -> seconds; 30s, 30m, 2h, 7d or plain seconds; 0 = never
	local re='^([0-9]+)([smhd]?)$' n unit
	[[ $1 =~ $re ]] || vfp_die 2 "bad --ttl $(vfp_quoted "$1"): use seconds or a number with s, m, h or d"
	n=$((10#${BASH_REMATCH[1]}))
	unit=${BASH_REMATCH[2]}
	case $unit in
	m) n=$((n * 60)) ;;
	h) n=$((n * 3600)) ;;
	d) n=$((n * 86400)) ;;
	esac
	printf '%d' "$n"
}

# Which map an entry lives in: exact addresses in the hash, prefixes in the
# trie; IPv6 ones in the maps named with a 6.
vfp_block_map() { # PREFIXLEN CANONICAL
	if vfp_is_v6 "$2"; then
		if (($1 == 128)); then vfp_map blocked_ips6; else vfp_map blocked_prefixes6; fi
	elif (($1 == 32)); then vfp_map blocked_ips; else vfp_map blocked_prefixes; fi
}

vfp_map_capacity() { # PATH
	bpftool -j map show pinned "$1" | jq -r '.max_entries'
}

vfp_full_error() { # PATH: the error an operator sees when a map is full
	local cap
	cap=$(vfp_map_capacity "$1")
	printf '%s is full: %s of %s entries in use; unload with --purge and load with a larger capacity, or remove entries' "${1##*/}" "$cap" "$cap"
}

# source_names holds one name per id (32 bytes, NUL padded). Prints the id of
# NAME, registering it in the first free feed slot when it is new.
vfp_valid_source_name() { [[ $1 =~ ^[A-Za-z0-9._-]{1,31}$ ]]; } # the names source_names can hold

vfp_source_id() { # NAME
	local name=$1 names id hex
	vfp_valid_source_name "$name" || vfp_die 2 "bad source name $(vfp_quoted "$name"): 1-31 of A-Z a-z 0-9 . _ -"
	case $name in
	unknown) echo 0; return ;;
	manual) echo 1; return ;;
	amqp) echo 2; return ;;
	esac
	names=$(vfp_source_names)
	id=$(awk -v n="$name" '$2 == n { print $1; exit }' <<<"$names")
	if [ -n "$id" ]; then echo "$id"; return; fi
	for ((id = VFP_SOURCE_FIRST_FEED; id < VFP_MAX_SOURCES; id++)); do
		if ! awk -v i="$id" '$1 == i { found = 1 } END { exit !found }' <<<"$names"; then
			hex=$(printf '%s' "$name" | od -An -tx1 -v | tr -s ' \n' ' ')
			local pad=$((32 - ${#name})) z=""
			while ((pad-- > 0)); do z+=" 00"; done
			# shellcheck disable=SC2046,SC2086
			bpftool map update pinned "$(vfp_map source_names)" key hex $(vfp_hex_u32_le "$id") value hex $hex $z ||
				vfp_die 1 "cannot register source '$name'"
			echo "$id"
			return
		fi
	done
	vfp_die 1 "no free source id for '$name' (all $VFP_MAX_SOURCES in use)"
}

vfp_source_names() { # "id name" per registered source
	bpftool -j map dump pinned "$(vfp_map source_names)" |
		jq -r '.[] | select(.value[0] != "0x00") |
			"\(.key | map(ltrimstr("0x")) | reverse | join("")) \(.value | map(ltrimstr("0x")) | map(select(. != "00")) | join(""))"' |
		while read -r key hexname; do
			# shellcheck disable=SC2001 # a backreference: each byte becomes \xNN
			printf '%d %b\n' "$((16#$key))" "$(sed 's/../\\x&/g' <<<"$hexname")"
		done
}

# Common option parsing: pulls --pin-dir DIR and --state-dir DIR out of the
# arguments and sets VFP_ARGS to the rest.
vfp_set_dir() { # --pin-dir|--state-dir DIR
	if [ "$1" = --pin-dir ]; then VFP_PIN_DIR=$2; else VFP_STATE_DIR=$2; fi
}

vfp_take_pin_dir() {
	VFP_ARGS=()
	while (($#)); do
		case $1 in
		--pin-dir | --state-dir)
			[ $# -ge 2 ] || vfp_die 2 "$1 needs a folder"
			vfp_set_dir "$1" "$2"
			shift 2
			;;
		--pin-dir=* | --state-dir=*)
			vfp_set_dir "${1%%=*}" "${1#*=}"
			shift
			;;
		*)
			VFP_ARGS+=("$1")
			shift
			;;
		esac
	done
}

# allow_ip.sh, disallow_ip.sh, options_allow_ip.sh and options_disallow_ip.sh
# differ only in map and verb.
vfp_mark_main() { # MAP add|remove USAGE ARGS...
	local map=$1 verb=$2 usage=$3 path text
	shift 3
	vfp_take_pin_dir "$@"
	set -- "${VFP_ARGS[@]}"
	[ $# -eq 1 ] || { echo "usage: $usage" >&2; exit 2; }
	[[ $1 != -* ]] || { echo "usage: $usage" >&2; exit 2; }
	text=$1
	if [ "$verb" = add ]; then
		vfp_validate_one "$text" 0 || vfp_die 2 "$VFP_ERROR"
	else
		vfp_validate_one "$text" remove || vfp_die 2 "$VFP_ERROR"
	fi
	vfp_require_maps
	if vfp_is_v6 "$VFP_CANON"; then map=${map}6; fi
	path=$(vfp_map "$map")
	[ -e "$path" ] || vfp_die 3 "no $map in $(vfp_pin_dir): these maps predate IPv6; run scripts/load.sh again to create it"
	if [ "$verb" = add ]; then
		# shellcheck disable=SC2046
		bpftool map update pinned "$path" key hex $(vfp_lpm_key) value hex $(vfp_mark_value) 2>/dev/null ||
			vfp_die 1 "$(vfp_full_error "$path")"
		echo "added $VFP_CANON to $map"
	else
		# shellcheck disable=SC2046
		bpftool map delete pinned "$path" key hex $(vfp_lpm_key) 2>/dev/null ||
			vfp_die 1 "$VFP_CANON is not in $map"
		echo "removed $VFP_CANON from $map"
	fi
}

# ---- The state: the SQLite database vosctl keeps (lib/state.ts; schema in state.sql) ----
# A block script writes in vosctl's order: take the database's write lock
# (BEGIN IMMEDIATE, waiting up to VOS_STATE_TIMEOUT seconds), write the map,
# write the rows, COMMIT. The sqlite3 shell runs as a coprocess for all of it,
# so the lock is held across the map write; if the script dies, sqlite3 sees
# its input end and SQLite rolls the transaction back.

VFP_DEFAULT_STATE_DIR=/var/lib/vos-fastpath
VFP_APPLICATION_ID=1448039238 # the state database's PRAGMA application_id, 'VOSF' (state.sql)
# As lib/state.ts NOT_OURS_HINT.
VFP_NOT_OURS_HINT='move it aside (or point VOS_STATE_DIR elsewhere), or let vosctl reconcile --from map set it aside and rebuild the state from the pinned maps'

vfp_state_db() {
	printf '%s/state.sqlite3' "${VFP_STATE_DIR:-${VOS_STATE_DIR:-$VFP_DEFAULT_STATE_DIR}}"
}

vfp_sql_text() { printf "'%s'" "${1//\'/\'\'}"; } # TEXT -> SQL string literal

# Send SQL (one argument a line) to the coprocess and wait until it is done.
# Sets VFP_SQL_OUT to what sqlite3 printed; returns 1 when sqlite3 failed
# (-bail: it exits, and VFP_SQL_OUT holds its error).
vfp_state_sql() {
	local line sent=1
	VFP_SQL_OUT=""
	# sqlite3 may have exited already (-bail on an error): SIGPIPE is ignored
	# (vfp_state_begin), so writing to it fails here instead of killing the
	# script with 141, and what it said before exiting is still read below.
	{ printf '%s\n' "$@" "SELECT 'vfp:done';" >&"$VFP_SQL_W"; } 2>/dev/null || sent=0
	while IFS= read -r line <&"$VFP_SQL_R"; do
		[ "$line" = vfp:done ] && ((sent)) && return 0
		VFP_SQL_OUT+=${VFP_SQL_OUT:+$'\n'}$line
	done
	[ -n "$VFP_SQL_OUT" ] || VFP_SQL_OUT="sqlite3 exited (status $(vfp_sql_status))"
	return 1
}

vfp_sql_status() { # the dead coprocess's exit status, or "unknown"
	local rc=0
	wait "$VFP_SQL_CHILD" 2>/dev/null || rc=$?
	if ((rc == 127)); then echo unknown; else echo "$rc"; fi
}

vfp_state_begin() { # the write lock, with the schema in place
	local db dir timeout_s=${VOS_STATE_TIMEOUT:-60}
	db=$(vfp_state_db)
	dir=${db%/*}
	command -v sqlite3 >/dev/null || vfp_die 3 "sqlite3 not found; install Debian's sqlite3 (scripts/setup.sh)"
	# One rule with vosctl (lib/state.ts timeoutS): whole seconds, 0 = do not wait, unset or empty = 60.
	[[ $timeout_s =~ ^[0-9]{1,6}$ ]] || vfp_die 2 "bad VOS_STATE_TIMEOUT $(vfp_quoted "$timeout_s"): whole seconds to wait for the state's write lock, 0 or more (0: do not wait; unset: 60)"
	if [ ! -e "$db" ] && { [ -e "$dir/blocklist.jsonl" ] || [ -e "$dir/journal.jsonl" ]; }; then
		vfp_die 3 "$dir holds the state in the old file format; run one vosctl command (vosctl status) to migrate it to $db first"
	fi
	mkdir -p "$dir" 2>/dev/null || vfp_die 3 "cannot create the state folder $dir; run as root"
	# As lib/state.ts checkPlace: in a folder group or others can write, never follow a link someone else may have put there.
	local mode
	mode=$(stat -c %a "$dir")
	if (((8#$mode & 8#022) != 0)); then
		if [ -L "$db" ]; then
			vfp_die 1 "$db is a symbolic link (to $(readlink "$db")) in $dir, a folder others can write (mode $mode): refusing to follow it; replace it with the file itself and make $dir writable by its owner only (chmod 755)"
		fi
		echo "${0##*/}: warning: the state folder $dir is writable by others (mode $mode): anyone could replace the blocklist's state; chmod 755 $dir" >&2
	fi
	[ ! -d "$db" ] || vfp_die 1 "$db is a directory, not a database file"
	# As lib/state.ts checkLinkTarget: a link to nothing (a mount not up yet) would get a new empty database.
	if [ -L "$db" ] && [ ! -e "$db" ]; then
		vfp_die 1 "the state database $db is a symbolic link to $(readlink "$db"), which does not exist (a file system not mounted yet?); refusing to create an empty state there. Mount what holds it and run the command again, or replace the link with the file itself"
	fi
	trap '' PIPE
	coproc VFP_SQL { exec sqlite3 -batch -bail "$db" 2>&1; }
	# Our own copies: bash unsets VFP_SQL as soon as sqlite3 exits (-bail on an error).
	exec {VFP_SQL_W}>&"${VFP_SQL[1]}" {VFP_SQL_R}<&"${VFP_SQL[0]}"
	VFP_SQL_CHILD=$VFP_SQL_PID
	# The schema version, and the tables that are not the state's (another program's file): as lib/state.ts checks.
	vfp_state_sql ".timeout $((timeout_s * 1000))" "PRAGMA synchronous = FULL;" \
		"SELECT user_version, (SELECT application_id FROM pragma_application_id), (SELECT ifnull(group_concat(name, ', '), '') FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT IN ('entries', 'sources', 'consumer_offsets')) ||" \
		"CASE WHEN EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'entries') AND (SELECT count(*) FROM pragma_table_info('entries') WHERE name IN ('target', 'source', 'reason', 'added', 'expires')) < 5 THEN ' entries (other columns)' ELSE '' END FROM pragma_user_version;" ||
		vfp_die 1 "the state database $db cannot be opened: $VFP_SQL_OUT"
	local version=${VFP_SQL_OUT##*$'\n'} foreign app
	foreign=${version#*|}
	app=${foreign%%|*}
	foreign=${foreign#*|}
	version=${version%%|*}
	# As lib/state.ts APPLICATION_ID: 'VOSF'; 0 is a database made before the id (stamped below) or a new one.
	if ((app != 0 && app != VFP_APPLICATION_ID)); then
		vfp_die 1 "$db is not a vos-fastpath database: its SQLite application_id is $app ($(printf '0x%08x' $((app & 0xffffffff)))), vos-fastpath's is $VFP_APPLICATION_ID ($(printf '0x%x' "$VFP_APPLICATION_ID")); another program's file: move it aside or point VOS_STATE_DIR elsewhere"
	fi
	((version <= 1)) || vfp_die 1 "the state database $db was written by a newer vos-fastpath (schema $version > 1); use that version, or move the file aside"
	[ -z "$foreign" ] || vfp_die 1 "$db is not a vos-fastpath database (tables: ${foreign# }); $VFP_NOT_OURS_HINT"
	# The shape vosctl checks too (state-shape.sql: tables, columns, unique index, header): a lookalike is refused before any write.
	vfp_state_sql ".read $VFP_SCRIPTS/state-shape.sql" || vfp_die 1 "the state database $db cannot be read: $VFP_SQL_OUT"
	[ -z "$VFP_SQL_OUT" ] || vfp_die 1 "$db is not a vos-fastpath database: it lacks $VFP_SQL_OUT; $VFP_NOT_OURS_HINT"
	if [ "$version" = 0 ]; then
		vfp_state_sql ".read $VFP_SCRIPTS/state.sql" || vfp_die 1 "the state database $db cannot be set up: $VFP_SQL_OUT"
	elif ((app == 0)); then
		vfp_state_sql "PRAGMA application_id = $VFP_APPLICATION_ID;" || vfp_die 1 "the state database $db cannot be written: $VFP_SQL_OUT"
	fi
	vfp_state_sql "BEGIN IMMEDIATE;" ||
		vfp_die 1 "the state database $db stayed locked by another writer past ${timeout_s}s (VOS_STATE_TIMEOUT), or failed: $VFP_SQL_OUT; nothing was changed"
}

# As lib/state.ts noteDamage: the damage record vosctl keeps beside the
# database (state.sqlite3.damage-found: JSON {ino, found, words}) about this
# very file (same inode) makes the script exit 1 once its work is done,
# naming the file, when and SQLite's words, and the recovery. A record about
# a file since replaced is ignored (vosctl drops it). Call as the script's
# last word: vfp_exit [STATUS].
vfp_exit() { # [STATUS]
	local db mark text ino found words
	db=$(vfp_state_db)
	mark="$db.damage-found"
	if [ -f "$mark" ] && text=$(<"$mark") 2>/dev/null; then
		ino=$(sed -n 's/.*"ino":\([0-9]*\).*/\1/p' <<<"$text")
		if [ -z "$ino" ] || [ "$ino" = "$(stat -Lc %i "$db" 2>/dev/null)" ]; then
			found=$(sed -n 's/.*"found":"\([^"]*\)".*/\1/p' <<<"$text")
			words=$(sed -n 's/.*"words":"\(\([^"\\]\|\\.\)*\)".*/\1/p' <<<"$text")
			echo "${0##*/}: the state database $db was found damaged${found:+ at $found} (${words:-see $mark}); what this command did was done, but a damaged file can lose entries at the next restore; to rebuild it: vosctl reconcile --from map (it sets the damaged file aside, salvages the rows still readable in it and merges them with what the pinned maps hold)" >&2
			exit 1
		fi
	fi
	exit "${1:-0}"
}

# COMMIT, then wait for sqlite3 to end. NOT_PERSISTED: what to say when the
# commit fails (the map is already changed).
vfp_state_commit() { # NOT_PERSISTED
	local db
	db=$(vfp_state_db)
	vfp_state_sql "COMMIT;" ||
		vfp_die 1 "the state database $db could not be written: $VFP_SQL_OUT. $1: NOT persisted (the map has it, a reboot would lose it); once the state can be written, run vosctl reconcile --from map"
	{ printf '.quit\n' >&"$VFP_SQL_W"; } 2>/dev/null || true
	exec {VFP_SQL_W}>&- {VFP_SQL_R}<&-
	wait "$VFP_SQL_CHILD" 2>/dev/null || true
}

# The state rows of a block: the entry exactly as the map now holds it (the
# scripts replace; they keep no reason), 500 rows a statement.
vfp_state_put_sql() { # SOURCE TTL_SECONDS (canonical targets on stdin, one a line) -> SQL on stdout
	local src expires=0
	src=$(vfp_sql_text "$1")
	if (($2 > 0)); then expires=$((VFP_NOW + $2)); fi
	printf 'INSERT INTO sources (name, first_seen) VALUES (%s, %d) ON CONFLICT DO NOTHING;\n' "$src" "$VFP_NOW"
	awk -v src="$src" -v now="$VFP_NOW" -v expires="$expires" '
		function flush() {
			print "INSERT INTO entries (target, source, reason, added, expires) VALUES " rows \
				" ON CONFLICT (target) DO UPDATE SET source = excluded.source, reason = NULL, added = excluded.added, expires = excluded.expires;"
			rows = ""; sep = ""
		}
		{ rows = rows sep "(\047" $1 "\047, " src ", NULL, " now ", " expires ")"; sep = ", " }
		NR % 500 == 0 { flush() }
		END { if (rows != "") flush() }'
}
