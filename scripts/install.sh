#!/usr/bin/env bash
# Production install of vos-fastpath on Debian 12/13, as root: the Debian
# packages the runtime uses and nothing else (no compiler, no test peers:
# those are scripts/setup.sh's, for developers and CI), then the npm package
# installed globally, then (with --units) the systemd units and completion.
#
#   scripts/install.sh [--tarball vos-fastpath-X.tgz] [--prefix DIR] [--units] [--no-apt]
#   scripts/install.sh --print-packages      # the list, one per line, installs nothing
#
# Without --tarball, the tarball is packed from this checkout (npm pack),
# which must have been built (scripts/setup.sh or npm run build) on a build host.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() { echo "usage: ${0##*/} [--tarball FILE] [--prefix DIR] [--units] [--no-apt] | --print-packages" >&2; exit 2; }

# What the runtime runs: bpftool and iproute2 (scripts), libbpf1 and libxdp1
# (the C helpers; libxdp1 ships the dispatcher), xdp-tools (xdp-loader, to see
# and load the programs sharing an interface), jq and sqlite3 (scripts),
# util-linux (mount for bpffs), openssh-client (cluster_sync_blocklist.sh),
# nodejs (vosctl; 20 or later: Debian 13's, or NodeSource's on Debian 12).
runtime_packages=(bpftool iproute2 libbpf1 libxdp1 xdp-tools jq sqlite3 util-linux openssh-client nodejs)

tarball="" prefix="" units=0 apt=1
while (($#)); do
	case $1 in
	--tarball) tarball=${2:-}; [ -n "$tarball" ] || usage; shift 2 ;;
	--prefix) prefix=${2:-}; [ -n "$prefix" ] || usage; shift 2 ;;
	--units) units=1; shift ;;
	--no-apt) apt=0; shift ;;
	--print-packages) printf '%s\n' "${runtime_packages[@]}"; exit 0 ;;
	*) usage ;;
	esac
done
say() { printf 'install: %s\n' "$*" >&2; }

if ((apt)); then
	[ "$(id -u)" -eq 0 ] || { say "run as root (or --no-apt)"; exit 3; }
	missing=()
	for p in "${runtime_packages[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if ((${#missing[@]})); then
		say "installing ${missing[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
	fi
fi
major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
((major >= 20)) || { say "vosctl needs Node.js 20 or later (found ${major}); on Debian 12 use NodeSource's nodejs 20"; exit 3; }

if [ -z "$tarball" ]; then
	co=$(cd "$here/.." && pwd)
	if [ ! -f "$co/dist/vosctl.cjs" ] || [ ! -f "$co/build/vos_fastpath.bpf.o" ]; then
		say "this checkout is not built: run scripts/setup.sh (a build host) or give --tarball"
		exit 3
	fi
	# npm pack runs with --ignore-scripts (prepack would rebuild with compilers a
	# production host lacks): refuse a build older than its sources.
	stale=$(find "$co/lib" "$co/xdp" "$co/bin" -newer "$co/dist/vosctl.cjs" -type f \( -name '*.ts' -o -name '*.c' -o -name '*.h' -o -name vosctl \) -print -quit)
	# The C side by make's own rules (what it would rebuild), where make is here.
	if [ -z "$stale" ] && command -v make >/dev/null && ! make -q -C "$co/xdp" ../build/vos_fastpath.bpf.o ../build/map_count.bpf.o tools >/dev/null 2>&1; then
		stale="its sources in xdp/ (make -C xdp would rebuild)"
	fi
	if [ -n "$stale" ]; then
		say "the build is older than $stale: rebuild first (npm run build, or scripts/setup.sh), then run this again"
		exit 3
	fi
	out=$(mktemp -d)
	trap 'rm -rf "$out"' EXIT
	tarball="$out/$(cd "$here/.." && npm pack --silent --ignore-scripts --pack-destination "$out" | tail -n 1)"
fi
[ -f "$tarball" ] || { say "no tarball '$tarball'"; exit 2; }
# npm 11 lists packages with install scripts not in allow-scripts; 11.19 runs
# them anyway and prints that warning even with the flag (README: Install).
allow=vos-fastpath
args=(install -g --no-audit --no-fund "--allow-scripts=$allow")
[ -z "$prefix" ] || args+=(--prefix "$prefix")
npm "${args[@]}" "$tarball" >&2
if [ -n "$prefix" ]; then bin=$prefix/bin; else bin=$(npm prefix -g)/bin; fi
say "installed $bin/vosctl"
if ((units)); then "$bin/vosctl" install-units; fi
"$bin/vosctl" doctor || say "vosctl doctor found something to fix before an attach (above)"
