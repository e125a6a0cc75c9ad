//go:build !linux

package cni

import (
	"errors"
	"net"
)

func linkMAC(nsPath, ifName string) (net.HardwareAddr, error) {
	return nil, errors.New("CNI plugin: only on Linux")
}
