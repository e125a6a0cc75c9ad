package daemon

import (
	"context"
	"fmt"
	"log/slog"
)

// problemTarget is the API server's list of problems shown in status.
type problemTarget interface {
	// setProblems reports whether the list changed.
	setProblems(problems []string) bool
}

// statusReconciler keeps what the operator sees: the objects left out
// (in status, and logged once each time the list changes); and when a
// setting GoBGP takes only at its start (listen port, bindMode) changed,
// it asks for a graceful restart in place.
type statusReconciler struct {
	api problemTarget
	log *slog.Logger
	// started are the listen port and bindMode the node runs with.
	startedPort uint16
	startedBind bool
	// restart stops the node gracefully and execs it again (nil: only log).
	restart func(*RestartInPlace)
}

func (r *statusReconciler) Name() string { return "status" }

func (r *statusReconciler) Reconcile(_ context.Context, d *desired) error {
	if r.api.setProblems(d.Problems) {
		for _, p := range d.Problems {
			r.log.Error("datastore object skipped", "problem", p)
		}
	}
	if d.ListenPort != r.startedPort || d.BindNodeIP != r.startedBind {
		why := fmt.Sprintf("listenPort %d -> %d, bindMode NodeIP %v -> %v", r.startedPort, d.ListenPort, r.startedBind, d.BindNodeIP)
		if r.restart == nil {
			r.log.Warn("listen port or bindMode changed; takes effect after a restart", "change", why)
		} else {
			r.log.Warn("listen port or bindMode changed; restarting in place (graceful restart keeps the routes)", "change", why)
			r.restart(&RestartInPlace{Reason: why})
		}
	}
	return nil
}
