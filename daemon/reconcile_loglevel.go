package daemon

import (
	"context"
	"log/slog"
	"strings"

	"github.com/petrel-net/petrel/config"
	"github.com/petrel-net/petrel/datastore"
)

// logLevelFrom is BGPConfiguration logSeverityScreen, the node's own
// object first, then "default"; ok is false when neither sets one (the
// environment's BGP_LOGSEVERITYSCREEN then stands).
func logLevelFrom(configs []*datastore.BGPConfiguration, node string) (level slog.Level, ok bool) {
	s := nodeSetting(configs, node, func(s *datastore.BGPConfigurationSpec) string { return s.LogSeverityScreen })
	if l, err := config.CalicoLogLevel(s); s != "" && err == nil {
		return l, true
	}
	return 0, false
}

// nodeSetting is a BGPConfiguration field as Calico reads it: the node's
// own object's value when it sets one, else default's ("" when neither).
func nodeSetting(configs []*datastore.BGPConfiguration, node string, field func(*datastore.BGPConfigurationSpec) string) string {
	for _, name := range []string{"node." + node, "default"} {
		for _, c := range configs {
			if c.Name == name && field(&c.Spec) != "" {
				return field(&c.Spec)
			}
		}
	}
	return ""
}

// logLevelReconciler applies logSeverityScreen live, as confd re-renders
// BIRD's debug settings: no restart, no session touched.
type logLevelReconciler struct {
	level    *slog.LevelVar
	fallback slog.Level // from the environment
	log      *slog.Logger
	applied  lastApplied[slog.Level]
}

func (r *logLevelReconciler) Name() string { return "log level" }

func (r *logLevelReconciler) Reconcile(_ context.Context, d *desired) error {
	want := r.fallback
	if d.LogLevel != nil {
		want = *d.LogLevel
	}
	return r.applied.apply(want, func(l slog.Level) error {
		if r.level.Level() != l {
			r.log.Warn("log level changed", "level", strings.ToLower(l.String()))
			r.level.Set(l)
		}
		return nil
	})
}
