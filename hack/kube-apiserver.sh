#!/usr/bin/env bash
# kube-apiserver.sh builds k8s.io/kubernetes/cmd/kube-apiserver once into a
# version-keyed cache directory outside the repo and prints the binary path as
# the last line of stdout. The kubernetes datastore is tested against a real
# API server; a cold build takes 15–25 minutes on 2 cores, so it is built in a
# tools module of its own (kept out of petrel's go.mod) and reused afterwards.
#
# Environment:
#   PETREL_CACHE            cache root (default /var/cache/petrel)
#   KUBE_APISERVER_VERSION  kubernetes version (default v1.37.2)
set -euo pipefail

version="${KUBE_APISERVER_VERSION:-v1.37.2}"
cache="${PETREL_CACHE:-/var/cache/petrel}"
dir="${cache}/kube-apiserver-${version}"
bin="${dir}/kube-apiserver"

# Warm: nothing to do.
if [[ -x "$bin" ]]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$dir"

# Several test packages may ask for the binary at once; only one builds.
exec 9>"${dir}/.lock"
flock 9
if [[ -x "$bin" ]]; then
	echo "$bin"
	exit 0
fi

go="${GO:-go}"
export GOWORK=off

# k8s.io/kubernetes points its staging modules at ./staging/src/k8s.io/X, which
# does not exist in the module zip; each must be replaced by the published
# k8s.io/X v0.<minor>.<patch> instead.
staging_version="v0.${version#v1.}"
echo "kube-apiserver.sh: downloading k8s.io/kubernetes@${version}" >&2
kgomod="$("$go" mod download -json "k8s.io/kubernetes@${version}" |
	sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
if [[ -z "$kgomod" || ! -f "$kgomod" ]]; then
	echo "kube-apiserver.sh: cannot find go.mod of k8s.io/kubernetes@${version}" >&2
	exit 1
fi
mapfile -t staging < <(
	awk '$2 == "=>" && $3 ~ /^\.\/staging\/src\/k8s\.io\// {print $1}' "$kgomod" | sort -u
)
if [[ ${#staging[@]} -eq 0 ]]; then
	echo "kube-apiserver.sh: no staging replaces found in $kgomod" >&2
	exit 1
fi

mod="${dir}/mod"
rm -rf "$mod"
mkdir -p "$mod"
{
	echo "module petrel.local/kube-apiserver-tools"
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
cat >"${mod}/tools.go" <<'EOF'
//go:build tools

// Package tools pins kube-apiserver so `go mod tidy` keeps its requirements.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
EOF

echo "kube-apiserver.sh: ${#staging[@]} staging replaces; resolving modules" >&2
(cd "$mod" && "$go" mod tidy -e >&2)
echo "kube-apiserver.sh: building kube-apiserver ${version} (cold: 15–25 min)" >&2
start=$(date +%s)
# Stamp the version as kubernetes' own build does; otherwise the server reports
# v0.0.0-master, which clients and compatibility checks dislike.
minor="${version#v1.}"
minor="${minor%%.*}"
vpkg=k8s.io/component-base/version
ldflags="-s -w -X ${vpkg}.gitVersion=${version} -X ${vpkg}.gitMajor=1 -X ${vpkg}.gitMinor=${minor} -X ${vpkg}.gitTreeState=clean"
(cd "$mod" && "$go" build -trimpath -ldflags "$ldflags" -o "${bin}.tmp" k8s.io/kubernetes/cmd/kube-apiserver >&2)
mv -f "${bin}.tmp" "$bin"
echo "kube-apiserver.sh: built in $(($(date +%s) - start))s" >&2
echo "$bin"
