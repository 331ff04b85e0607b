package main

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/taskgate/taskgate/config"
	"github.com/taskgate/taskgate/gateway"
)

var updateREADME = flag.Bool("update", false, "rewrite the README's generated tables")

// TestREADMETables keeps the README's configuration and route tables equal
// to the ones the code enforces.
func TestREADMETables(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, tc := range []struct{ name, want string }{
		{"config-table", config.MarkdownTable()},
		{"route-table", gateway.RouteTableMarkdown()},
		{"conformance-table", conformanceMarkdown(t)},
	} {
		begin, end := "<!-- "+tc.name+":begin -->\n", "<!-- "+tc.name+":end -->"
		i, j := strings.Index(readme, begin), strings.Index(readme, end)
		if i < 0 || j < i {
			t.Errorf("README lacks the %s markers", tc.name)
			continue
		}
		if got := readme[i+len(begin) : j]; got != tc.want {
			if *updateREADME {
				readme = readme[:i+len(begin)] + tc.want + readme[j:]
				continue
			}
			t.Errorf("README %s is stale (go test -run TestREADMETables . -args -update):\n%s", tc.name, tc.want)
		}
	}
	if *updateREADME {
		if err := os.WriteFile("README.md", []byte(readme), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
