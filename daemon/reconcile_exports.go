package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// exportTarget is the part of the speaker that decides what the node
// advertises.
type exportTarget interface {
	SetExportRanges(ctx context.Context, ranges []netip.Prefix) error
	SetReflect(ctx context.Context, on bool) error
	SetOriginated(ctx context.Context, prefixes []netip.Prefix) error
}

// exportReconciler keeps the prefixes the node advertises: the export
// ranges, route reflection, and the originated prefixes.
type exportReconciler struct {
	speaker    exportTarget
	ranges     lastApplied[[]netip.Prefix]
	reflect    lastApplied[bool]
	originated lastApplied[[]netip.Prefix]
}

func (r *exportReconciler) Name() string { return "exported prefixes" }

func (r *exportReconciler) Reconcile(ctx context.Context, d *desired) error {
	var errs []error
	if err := r.ranges.apply(d.ExportRanges, func(p []netip.Prefix) error { return r.speaker.SetExportRanges(ctx, p) }); err != nil {
		errs = append(errs, fmt.Errorf("applying pool export ranges: %w", err))
	}
	if err := r.reflect.apply(d.Reflector, func(on bool) error { return r.speaker.SetReflect(ctx, on) }); err != nil {
		errs = append(errs, fmt.Errorf("applying route reflection: %w", err))
	}
	if err := r.originated.apply(d.Originated, func(p []netip.Prefix) error { return r.speaker.SetOriginated(ctx, p) }); err != nil {
		errs = append(errs, fmt.Errorf("originating: %w", err))
	}
	return errors.Join(errs...)
}
