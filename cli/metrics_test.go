package cli

import (
	"testing"

	"github.com/taskgate/taskgate/metrics"
	"github.com/taskgate/taskgate/tokens"
)

// TestTokenOutcomeLabels holds the label order tokenObserver counts by to
// tokens.Outcome's.
func TestTokenOutcomeLabels(t *testing.T) {
	if len(metrics.TokenOutcomes) != tokens.Outcomes {
		t.Fatalf("metrics has %d token outcomes, tokens %d", len(metrics.TokenOutcomes), tokens.Outcomes)
	}
	for i, name := range metrics.TokenOutcomes {
		if got := tokens.Outcome(i).String(); got != name {
			t.Errorf("outcome %d: tokens calls it %q, metrics %q", i, got, name)
		}
	}
}
