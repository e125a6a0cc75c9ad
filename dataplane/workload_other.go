//go:build !linux

package dataplane

import (
	"context"
	"errors"
)

// Plumber adds and removes pods' veth plumbing; only Linux has it.
type Plumber struct{}

var errWorkloadUnsupported = errors.New("workload plumbing is only supported on Linux")

// NewPlumber fails: workload plumbing is Linux-only.
func NewPlumber(hostNetNS string) (*Plumber, error) { return nil, errWorkloadUnsupported }

// Add fails: workload plumbing is Linux-only.
func (p *Plumber) Add(ctx context.Context, w Workload) (string, error) {
	return "", errWorkloadUnsupported
}

// Del fails: workload plumbing is Linux-only.
func (p *Plumber) Del(ctx context.Context, namespace, pod, netnsPath string) error {
	return errWorkloadUnsupported
}

// Check fails: workload plumbing is Linux-only.
func (p *Plumber) Check(ctx context.Context, w Workload) error { return errWorkloadUnsupported }

// Close does nothing.
func (p *Plumber) Close() error { return nil }
