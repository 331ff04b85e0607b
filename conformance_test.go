package main

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The conformance inventory: every test case of Airflow's Execution API test
// suite (airflow-core/tests/unit/api_fastapi/execution_api/…/test_*.py), one
// TSV file per Airflow test file under testdata/airflow/conformance, each row
// naming a case and whether it is ported to a Go test against the real
// binary or cannot be expressed over HTTP (and why). A ported case is a Go
// test case in integration_test whose name is the row's case as a string
// literal ("test_variables.py::TestGetVariable::test_variable_get_from_db",
// optionally with a "[param]" suffix for one parametrization).

const conformanceDir = "testdata/airflow/conformance"

// airflowCase matches a case name as the Go tests spell it.
var airflowCase = regexp.MustCompile(`^(v[0-9]{4}_[0-9]{2}_[0-9]{2}/)?test_[a-z0-9_]+\.py::[A-Za-z0-9_]+(::[A-Za-z0-9_]+)*(\[[^\]]*\])?$`)

// inventoryFile is the Airflow test file a TSV lists: "test_dags.tsv" lists
// versions/head/test_dags.py, "v2026_04_06__test_dags.tsv" lists
// versions/v2026_04_06/test_dags.py, whose cases are named
// "v2026_04_06/test_dags.py::…".
func inventoryFile(tsv string) string {
	return strings.Replace(strings.TrimSuffix(tsv, ".tsv"), "__", "/", 1) + ".py"
}

type conformanceRow struct {
	file, name, status, note string
	line                     int
}

// readConformanceInventory reads every TSV of the inventory.
func readConformanceInventory(t *testing.T) []conformanceRow {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(conformanceDir, "*.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []conformanceRow
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			cols := strings.Split(line, "\t")
			for len(cols) < 3 {
				cols = append(cols, "")
			}
			r := conformanceRow{file: filepath.Base(p), name: cols[0], status: cols[1], note: cols[2], line: n}
			switch {
			case !airflowCase.MatchString(r.name) || strings.Contains(r.name, "["):
				t.Errorf("%s:%d: %q is not a case name (file.py::Class::test, no parameters)", p, n, r.name)
			case !strings.HasPrefix(r.name, inventoryFile(r.file)+"::"):
				t.Errorf("%s:%d: %q belongs in another file", p, n, r.name)
			case r.status != "ported" && r.status != "inexpressible":
				t.Errorf("%s:%d: status %q, want ported or inexpressible", p, n, r.status)
			case r.status == "inexpressible" && strings.TrimSpace(r.note) == "":
				t.Errorf("%s:%d: an inexpressible case needs the reason", p, n)
			}
			rows = append(rows, r)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return rows
}

// portedCaseNames returns every Airflow case named by a string literal in
// the integration tests, without its parameter suffix, with where it is.
func portedCaseNames(t *testing.T) map[string]string {
	t.Helper()
	paths, err := filepath.Glob("integration_test/*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	names := map[string]string{}
	for _, p := range paths {
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil || !airflowCase.MatchString(s) {
				return true
			}
			if i := strings.IndexByte(s, '['); i >= 0 {
				s = s[:i]
			}
			if _, seen := names[s]; !seen {
				names[s] = fset.Position(lit.Pos()).String()
			}
			return true
		})
	}
	return names
}

// TestConformanceInventory holds the inventory and the Go tests to each
// other: a ported row has a Go case, a Go case has a ported row.
func TestConformanceInventory(t *testing.T) {
	rows := readConformanceInventory(t)
	goCases := portedCaseNames(t)
	seen := map[string]bool{}
	for _, r := range rows {
		if seen[r.name] {
			t.Errorf("%s:%d: %s listed twice", r.file, r.line, r.name)
		}
		seen[r.name] = true
		if _, ok := goCases[r.name]; r.status == "ported" && !ok {
			t.Errorf("%s:%d: %s is marked ported but no integration test names it", r.file, r.line, r.name)
		}
		if _, ok := goCases[r.name]; r.status == "inexpressible" && ok {
			t.Errorf("%s:%d: %s is marked inexpressible but %s ports it", r.file, r.line, r.name, goCases[r.name])
		}
	}
	for name, at := range goCases {
		if !seen[name] {
			t.Errorf("%s names %s, which the inventory under %s does not list", at, name, conformanceDir)
		}
	}
}

// conformanceMarkdown is the README's table of ported cases per Airflow
// test file. Every ported case runs in make test, so ported cases pass.
func conformanceMarkdown(t *testing.T) string {
	type count struct{ total, ported, inexpressible int }
	byFile := map[string]*count{}
	var total count
	for _, r := range readConformanceInventory(t) {
		c := byFile[r.file]
		if c == nil {
			c = &count{}
			byFile[r.file] = c
		}
		c.total++
		total.total++
		if r.status == "ported" {
			c.ported++
			total.ported++
		} else {
			c.inexpressible++
			total.inexpressible++
		}
	}
	files := make([]string, 0, len(byFile))
	for f := range byFile {
		files = append(files, f)
	}
	sort.Strings(files)
	var b strings.Builder
	b.WriteString("| Airflow test file | cases | ported and passing | cannot be expressed over HTTP |\n|---|---:|---:|---:|\n")
	for _, f := range files {
		c := byFile[f]
		fmt.Fprintf(&b, "| `%s` | %d | %d | %d |\n", inventoryFile(f), c.total, c.ported, c.inexpressible)
	}
	fmt.Fprintf(&b, "| **all** | **%d** | **%d** | **%d** |\n", total.total, total.ported, total.inexpressible)
	return b.String()
}
