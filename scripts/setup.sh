#!/usr/bin/env bash
# Install and build everything vos-fastpath needs on Debian 12, as root.
# Idempotent and quick when nothing is missing: packages are checked with
# dpkg first, Node modules are installed only when the lock file changed,
# and make/tsc rebuild only what is stale.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)

usage() { echo "usage: ${0##*/} [--no-apt] [--no-broker]" >&2; exit 2; }
apt=1 broker=1
while (($#)); do
	case $1 in
	--no-apt) apt=0; shift ;;
	--no-broker) broker=0; shift ;;
	*) usage ;;
	esac
done

say() { printf 'setup: %s\n' "$*" >&2; }

# Build, XDP lab and test peers. Kept in one list so a fresh machine and CI agree.
packages=(
	clang llvm libbpf-dev bpftool iproute2 xdp-tools libxdp-dev gcc make libc6-dev linux-libc-dev
	jq ipset shellcheck hyperfine
	rabbitmq-server amqp-tools
	kamailio kamailio-rabbitmq-modules sip-tester sipvicious
	# durable state (the sqlite3 shell the scripts write through); better-sqlite3 builds from source with node-gyp (python3, g++, make)
	sqlite3 python3 g++
	# integration peers: metrics, CrowdSec's bouncer, fail2ban
	prometheus crowdsec crowdsec-custom-bouncer fail2ban
	openssh-server openssh-client
	# used by tests and contrib: TLS certificates, the feed fetcher, pgrep/ss/nsenter, systemd-analyze
	openssl curl procps util-linux systemd
)

if ((apt)); then
	missing=()
	for p in "${packages[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if ((${#missing[@]})); then
		[ "$(id -u)" -eq 0 ] || { say "missing packages: ${missing[*]}; run as root to install them"; exit 3; }
		say "installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		# crowdsec's post-install registers with the central API, which this machine
		# cannot reach; Debian's README.Debian: a comment line here skips it.
		if [ ! -e /etc/crowdsec/online_api_credentials.yaml ]; then
			mkdir -p /etc/crowdsec
			echo '# offline: no central API registration' >/etc/crowdsec/online_api_credentials.yaml
		fi
		# Debian starts services on install; policy-rc.d keeps kamailio and sshd from
		# grabbing ports: tests start their own, each on its own address.
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
		apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
		rm -f /usr/sbin/policy-rc.d
	fi
fi

if [ "$(id -u)" -eq 0 ] && ! mount | grep -q ' /sys/fs/bpf type bpf '; then
	say "mounting bpffs on /sys/fs/bpf"
	mount -t bpf bpf /sys/fs/bpf
fi

if ((broker)) && [ "$(id -u)" -eq 0 ] && command -v rabbitmqctl >/dev/null; then
	if ! rabbitmqctl -q status >/dev/null 2>&1; then
		say "starting RabbitMQ"
		rabbitmq-server -detached
		for _ in $(seq 1 60); do
			rabbitmqctl -q await_startup >/dev/null 2>&1 && break
			sleep 1
		done
	fi
fi

cd "$top"
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.vfp-lock-sum 2>/dev/null)" != "$lock_sum" ]; then
	say "installing Node modules"
	# npm ci rejects lock files with platform-optional packages on this npm; install honours the lock.
	npm install --no-audit --no-fund >&2
	echo "$lock_sum" >node_modules/.vfp-lock-sum
fi

make -s -C xdp >&2
stamp=dist/.built
if [ ! -f "$stamp" ] || [ ! -f dist/vosctl.cjs ] || [ -n "$(find lib tsconfig.json package.json scripts/bundle.sh -newer "$stamp" -print -quit)" ]; then
	say "compiling TypeScript"
	npx tsc -p tsconfig.json
	# One file for bin/vosctl: finding and loading each module file separately
	# cost about 120 of the 320 ms of a `vosctl block` (bench/load-file.ts).
	bash scripts/bundle.sh
	touch "$stamp"
fi
