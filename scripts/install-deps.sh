#!/usr/bin/env bash
# Install every Debian package gwcluster needs to build, test and run its lab.
# Idempotent: packages already present are skipped without touching apt.
set -euo pipefail

# Build and unit-test dependencies.
BUILD_PKGS=(
	build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
	libsodium-dev libb2-dev libnl-3-dev libnl-route-3-dev libzmq3-dev
	libprotobuf-c-dev protobuf-c-compiler libsqlite3-dev libcriterion-dev
)
# Runtime companions and integration-test tools.
RUN_PKGS=(
	iproute2 iputils-ping procps psmisc nftables keepalived frr conntrackd
	wireguard-tools wireguard-go iperf3 tshark python3 jq prometheus curl
	# Deployment: ansible/ (roles, playbooks) and integration_ansible.
	ansible-core
)

missing=()
for p in "${BUILD_PKGS[@]}" "${RUN_PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all packages present"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages (${missing[*]}); run as root" >&2
	exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; iperf3 whether to run a daemon.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
echo "iperf3 iperf3/start_daemon boolean false" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Packaged daemons must not run in the host namespace: the lab starts its own.
for svc in keepalived frr conntrackd prometheus iperf3; do
	systemctl disable --now "$svc" >/dev/null 2>&1 || true
	service "$svc" stop >/dev/null 2>&1 || true
done
