//go:build pgmerged

package cli

import "github.com/taskgate/taskgate/pgstore"

// pgstore.DB serves everything a server and the offline commands need
// (its task instances, XComs and the rest come with the branches that
// write them). Built with -tags pgmerged until they are merged; then this
// constraint goes, and openStorage returns the *pgstore.DB directly.
var _ storage = (*pgstore.DB)(nil)
