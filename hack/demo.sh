#!/usr/bin/env bash
# Two petrel nodes in two network namespaces peer over iBGP and exchange
# their pod blocks. Everything lives in namespaces this script creates and
# removes on exit. DEMO_KEEP=1 keeps it running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: needs root (network namespaces)"; exit 1; }

petrel=$PWD/bin/petrel
dir=$(mktemp -d /tmp/petrel-demo.XXXXXX)
a=petrel-demo-a b=petrel-demo-b
pids=()

cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	ip netns del "$a" 2>/dev/null || true
	ip netns del "$b" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns del "$a" 2>/dev/null || true
ip netns del "$b" 2>/dev/null || true
ip netns add "$a"
ip netns add "$b"
ip -n "$a" link set lo up
ip -n "$b" link set lo up
ip -n "$a" link add eth1 type veth peer name eth1 netns "$b"
ip -n "$a" addr add 10.0.0.1/24 dev eth1
ip -n "$b" addr add 10.0.0.2/24 dev eth1
ip -n "$a" link set eth1 up
ip -n "$b" link set eth1 up

node() { # name, own address, peer address, block
	cat >"$dir/$1.yaml" <<YAML
nodeName: $1
routerID: $2
socket: $dir/$1.sock
peers:
  - address: $3
    asNumber: 64512
originate: [$4]
YAML
}
node node-a 10.0.0.1 10.0.0.2 192.168.0.192/26
node node-b 10.0.0.2 10.0.0.1 192.168.1.0/26

ip netns exec "$a" "$petrel" daemon --config "$dir/node-a.yaml" >"$dir/node-a.log" 2>&1 &
pids+=($!)
ip netns exec "$b" "$petrel" daemon --config "$dir/node-b.yaml" >"$dir/node-b.log" 2>&1 &
pids+=($!)

echo "waiting for the session..."
for _ in $(seq 1 50); do
	if "$petrel" status --socket "$dir/node-a.sock" -o json 2>/dev/null | grep -q '"bgpState": "Established"'; then
		break
	fi
	sleep 0.2
done
for n in node-a node-b; do
	echo
	echo "=== $n: petrel status"
	"$petrel" status --socket "$dir/$n.sock"
	echo
	echo "=== $n: petrel routes"
	"$petrel" routes --socket "$dir/$n.sock"
done

if [ "${DEMO_KEEP:-}" = 1 ]; then
	echo
	echo "running; try: $petrel status --socket $dir/node-a.sock   (Ctrl-C to stop and clean up)"
	wait
fi
