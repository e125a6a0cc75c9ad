package daemon

import (
	"context"
	"log/slog"
)

// problemTarget is the API server's list of problems shown in status.
type problemTarget interface {
	// setProblems reports whether the list changed.
	setProblems(problems []string) bool
}

// statusReconciler keeps what the operator sees: the objects left out
// (in status, and logged once each time the list changes), and a warning
// when a setting that needs a restart (listen port, bindMode) changed.
type statusReconciler struct {
	api problemTarget
	log *slog.Logger
	// started are the listen port and bindMode the node runs with.
	startedPort uint16
	startedBind bool
}

func (r *statusReconciler) Name() string { return "status" }

func (r *statusReconciler) Reconcile(_ context.Context, d *desired) error {
	if r.api.setProblems(d.Problems) {
		for _, p := range d.Problems {
			r.log.Error("datastore object skipped", "problem", p)
		}
	}
	if d.ListenPort != r.startedPort || d.BindNodeIP != r.startedBind {
		r.log.Warn("listen port or bindMode changed; takes effect after a restart", "listenPort", d.ListenPort, "bindNodeIP", d.BindNodeIP)
	}
	return nil
}
