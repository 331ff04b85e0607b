package cli

import (
	"testing"

	"github.com/taskgate/taskgate/internal/pgtest"
)

// TestMain stops the throwaway PostgreSQL cluster the tests may have started.
func TestMain(m *testing.M) { pgtest.Main(m) }
