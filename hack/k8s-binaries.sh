#!/usr/bin/env bash
# k8s-binaries.sh builds Kubernetes commands (kube-apiserver, kubelet,
# kube-controller-manager, kube-scheduler, ...) from k8s.io/kubernetes once
# into a version-keyed cache outside the repo and prints each binary's path,
# one line per command in the order asked. A cold build takes 15–25 minutes per
# large command on 2 cores, so the commands are built in a tools module of
# their own (kept out of petrel's go.mod) and reused afterwards.
#
#   hack/k8s-binaries.sh kubelet kube-scheduler
#
# Environment:
#   PETREL_CACHE  cache root (default /var/cache/petrel)
#   KUBE_VERSION  kubernetes version (default v1.37.2; KUBE_APISERVER_VERSION
#                 is honoured for the older kube-apiserver.sh callers)
set -euo pipefail

if [[ $# -eq 0 ]]; then
	echo "usage: $0 COMMAND..." >&2
	exit 2
fi
version="${KUBE_VERSION:-${KUBE_APISERVER_VERSION:-v1.37.2}}"
cache="${PETREL_CACHE:-/var/cache/petrel}"

# Each command keeps its own directory (kube-apiserver's predates this script).
binpath() { echo "${cache}/$1-${version}/$1"; }
missing() {
	local c
	for c in "$@"; do
		[[ -x "$(binpath "$c")" ]] || echo "$c"
	done
}

mapfile -t todo < <(missing "$@")
if [[ ${#todo[@]} -gt 0 ]]; then
	mod="${cache}/k8s-tools-${version}"
	mkdir -p "$mod"
	# Several tests may ask at once; only one builds.
	exec 9>"${mod}/.lock"
	flock 9
	mapfile -t todo < <(missing "$@")
fi
if [[ ${#todo[@]} -eq 0 ]]; then
	for c in "$@"; do binpath "$c"; done
	exit 0
fi

go="${GO:-go}"
export GOWORK=off

# k8s.io/kubernetes points its staging modules at ./staging/src/k8s.io/X, which
# does not exist in the module zip; each must be replaced by the published
# k8s.io/X v0.<minor>.<patch> instead.
staging_version="v0.${version#v1.}"
echo "k8s-binaries.sh: downloading k8s.io/kubernetes@${version}" >&2
kgomod="$("$go" mod download -json "k8s.io/kubernetes@${version}" |
	sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
if [[ -z "$kgomod" || ! -f "$kgomod" ]]; then
	echo "k8s-binaries.sh: cannot find go.mod of k8s.io/kubernetes@${version}" >&2
	exit 1
fi
mapfile -t staging < <(
	awk '$2 == "=>" && $3 ~ /^\.\/staging\/src\/k8s\.io\// {print $1}' "$kgomod" | sort -u
)
if [[ ${#staging[@]} -eq 0 ]]; then
	echo "k8s-binaries.sh: no staging replaces found in $kgomod" >&2
	exit 1
fi

rm -f "${mod}/go.mod" "${mod}/go.sum" "${mod}/tools.go"
{
	echo "module petrel.local/k8s-tools"
	echo
	echo "go $(awk '$1 == "go" {print $2; exit}' "$kgomod")"
	echo
	echo "require k8s.io/kubernetes ${version}"
	echo
	echo "replace ("
	for m in "${staging[@]}"; do
		echo "	${m} => ${m} ${staging_version}"
	done
	echo ")"
} >"${mod}/go.mod"
{
	echo "//go:build tools"
	echo
	echo "// Package tools pins the commands built so \`go mod tidy\` keeps their requirements."
	echo "package tools"
	echo
	for c in "${todo[@]}"; do echo "import _ \"k8s.io/kubernetes/cmd/${c}\""; done
} >"${mod}/tools.go"

echo "k8s-binaries.sh: ${#staging[@]} staging replaces; resolving modules" >&2
(cd "$mod" && "$go" mod tidy -e >&2)
# Stamp the version as kubernetes' own build does; otherwise components report
# v0.0.0-master, which clients and version-skew checks dislike.
minor="${version#v1.}"
minor="${minor%%.*}"
vpkg=k8s.io/component-base/version
ldflags="-s -w -X ${vpkg}.gitVersion=${version} -X ${vpkg}.gitMajor=1 -X ${vpkg}.gitMinor=${minor} -X ${vpkg}.gitTreeState=clean"
for c in "${todo[@]}"; do
	echo "k8s-binaries.sh: building ${c} ${version} (cold: 15–25 min)" >&2
	start=$(date +%s)
	bin="$(binpath "$c")"
	mkdir -p "$(dirname "$bin")"
	(cd "$mod" && "$go" build -trimpath -ldflags "$ldflags" -o "${bin}.tmp" "k8s.io/kubernetes/cmd/${c}" >&2)
	mv -f "${bin}.tmp" "$bin"
	echo "k8s-binaries.sh: built ${c} in $(($(date +%s) - start))s" >&2
done
for c in "$@"; do binpath "$c"; done
