#!/usr/bin/env bash
# kube-apiserver.sh prints the cached kube-apiserver's path as the last line of
# stdout, building it first if needed (see k8s-binaries.sh). The kubernetes
# datastore is tested against a real API server.
#
# Environment: PETREL_CACHE, KUBE_APISERVER_VERSION (see k8s-binaries.sh).
exec "$(dirname "$0")/k8s-binaries.sh" kube-apiserver
