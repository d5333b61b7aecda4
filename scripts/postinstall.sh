#!/bin/sh
# npm postinstall of the packed vos-fastpath: the C helpers in build/ were
# built where the package was packed. Where they cannot run here (another
# architecture or libc), build them from the shipped sources (xdp/); where
# libbpf or libxdp is missing, say which Debian packages bring them.
# In a checkout (xdp/*.bpf.c present) it does nothing: scripts/setup.sh builds.
set -eu
cd "$(dirname "$0")/.."
[ -f xdp/vos_fastpath.bpf.c ] && exit 0
# better-sqlite3's addon ships prebuilt for the packing host's Node ABI and
# architecture (build/better_sqlite3-node<ABI>-linux-<arch>.node): say, with
# the command, where it does not load. vosctl names the same command.
addon=build/$(node -p '"better_sqlite3-node" + process.versions.modules + "-" + process.platform + "-" + process.arch + ".node"')
if ! err=$(node -e 'try { process.dlopen({ exports: {} }, require("path").resolve(process.argv[1])) } catch (e) { console.error(e.message.split("\n")[0]); process.exit(1) }' "$addon" 2>&1); then
	ver=$(node -p 'require("./package.json").devDependencies["better-sqlite3"].replace(/^[^0-9]*/, "")')
	shipped=$(cd build && for f in better_sqlite3-*.node; do if [ -e "$f" ]; then printf '%s ' "$f"; fi; done)
	echo "vos-fastpath: no SQLite addon that loads on this Node ($(node -v), $addon): $err" >&2
	echo "vos-fastpath: the package ships ${shipped:-none}; build one here (needs a compiler):" >&2
	echo "  apt-get install g++ make python3 && npm install --prefix $(pwd) --no-save --no-package-lock better-sqlite3@$ver" >&2
fi
rebuild=0
for tool in build/vfp-maptool build/vfp-xdp; do
	# Each prints its usage and exits 2 when it runs; 126/127 when it cannot.
	rc=0
	out=$("$tool" 2>&1) || rc=$?
	[ "$rc" -eq 2 ] && continue
	case $out in
	*"error while loading shared libraries"*)
		echo "vos-fastpath: $tool needs libbpf and libxdp: apt-get install libbpf1 libxdp1 (vosctl doctor checks)" >&2 ;;
	*) rebuild=1 ;;
	esac
done
[ "$rebuild" -eq 1 ] || exit 0
echo "vos-fastpath: the prebuilt helpers do not run on $(uname -m); building them from xdp/" >&2
if ! make -s -B -C xdp tools >&2; then
	echo "vos-fastpath: building the helpers failed; they need gcc make libbpf-dev libxdp-dev (apt-get install gcc make libbpf-dev libxdp-dev), then: make -C $(pwd)/xdp tools" >&2
	exit 1
fi
