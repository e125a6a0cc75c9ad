#!/usr/bin/env bash
# Installs what petrel's tests and demo need on a fresh Debian machine:
# Go modules, and (as root) the interop daemons and network tools.
set -euo pipefail
cd "$(dirname "$0")/.."

go mod download

# containerd, runc, busybox-static and the standard CNI plugins make the
# Kubernetes lab's nodes (docs/lab.md).
packages=(bird2 frr gobgpd iproute2 iputils-ping iputils-arping tcpdump etcd-server curl
	containerd runc busybox-static containernetworking-plugins)
need=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: not root; skipping Debian packages (${need[*]}); e2e tests will skip" >&2
	exit 0
fi
echo "install-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The packages' own services are not wanted: tests run their daemons in
# network namespaces with their own sockets.
for svc in bird frr gobgpd etcd containerd; do
	if command -v systemctl >/dev/null && systemctl is-active -q "$svc" 2>/dev/null; then
		systemctl stop "$svc" || true
	fi
done
