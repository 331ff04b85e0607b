package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestPackageBoundaries keeps dependencies pointing inward: the domain
// packages know no HTTP, JWT or storage library, only the store knows bbolt,
// only the command line (cli) and the benchmark tools assemble the parts, and
// the internal helper packages use the standard library alone. Every package
// of the module needs its rule here: a new one fails the test until it names
// what it may import, so that nothing imports upward unnoticed. Only
// non-test files are checked; tests may import their fakes.
func TestPackageBoundaries(t *testing.T) {
	const mod = "github.com/taskgate/taskgate/"
	var (
		echo   = "github.com/labstack/echo"
		jwt    = "github.com/golang-jwt/jwt"
		bbolt  = "go.etcd.io/bbolt"
		zap    = "go.uber.org/zap"
		uuid   = "github.com/google/uuid"
		cobra  = "github.com/spf13/"
		atomic = mod + "internal/atomicfile"
		pgx    = "github.com/jackc/pgx"
		prom   = "github.com/prometheus/client_golang/"
	)
	type rule struct {
		// allowed non-standard imports (prefixes); anything else outside the
		// standard library is a violation.
		allowed   []string
		forbidden []string
	}
	rules := map[string]rule{
		// main.go only wires the process to the command line.
		".":        {[]string{mod + "cli"}, nil},
		"scopes":   {[]string{mod + "internal/pyjson"}, []string{"net/http"}},
		"workload": {[]string{mod + "scopes", mod + "internal/pyjson"}, []string{"net/http"}},
		"auth":     {[]string{mod + "scopes", "golang.org/x/crypto/bcrypt"}, []string{"net/http"}},
		"operator": {[]string{mod + "scopes", mod + "workload", mod + "auth"}, []string{"net/http"}},
		"reissue":  {[]string{mod + "scopes", echo, zap}, nil},
		"tokens":   {[]string{mod + "scopes", atomic, jwt, uuid}, nil},
		"store":    {[]string{mod + "workload", mod + "auth", atomic, bbolt}, nil},
		// Airflow's metadata database: only pgstore knows pgx, besides the
		// tools that create such databases (the tests' helper, the benchmark).
		"pgstore":         {[]string{mod + "workload", mod + "auth", mod + "internal/pyjson", pgx}, nil},
		"internal/pgtest": {[]string{pgx, mod + "internal/pyjson"}, nil},
		"internal/pyjson": {nil, nil},
		"config":          {nil, nil},
		"fernet":          {[]string{atomic}, nil},
		"gateway":         {[]string{mod + "scopes", mod + "workload", mod + "internal/pyjson", mod + "reissue", mod + "auth", mod + "operator", echo, zap, mod + "metrics"}, nil},
		"client":          {[]string{mod + "workload", uuid}, nil},
		"worker":          {[]string{mod + "client", mod + "workload", uuid, zap}, nil},
		// The composition root: everything but the tools and test support.
		"cli": {[]string{mod + "auth", mod + "client", mod + "config", mod + "fernet", mod + "gateway", atomic,
			mod + "operator", mod + "pgstore", mod + "scopes", mod + "store", mod + "tokens", mod + "worker", mod + "workload",
			cobra, uuid, zap, mod + "metrics"}, nil},
		"internal/atomicfile":  {nil, nil},
		"internal/fakeclock":   {nil, nil},
		"internal/fakeapi":     {nil, nil},
		"internal/tokencorpus": {nil, nil},
		"bench":                {nil, nil},
		"bench/cmd/baseline":   {[]string{mod + "bench", mod + "config", echo}, nil},
		"bench/cmd/loadgen": {[]string{mod + "bench", mod + "client", mod + "config", mod + "fernet", mod + "scopes",
			mod + "store", mod + "tokens", mod + "workload", pgx, uuid}, nil},
		// Prometheus: only metrics knows it; the domain packages declare
		// observers it satisfies, or the cli adapts.
		"metrics": {[]string{prom}, nil},
	}
	pkgs := map[string][]string{} // directory → its non-test Go files
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			dir := filepath.ToSlash(filepath.Dir(path))
			pkgs[dir] = append(pkgs[dir], path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for dir := range rules {
		if _, ok := pkgs[dir]; !ok {
			t.Errorf("%s: a rule for a package with no Go files", dir)
		}
	}
	for _, dir := range slices.Sorted(func(yield func(string) bool) {
		for d := range pkgs {
			if !yield(d) {
				return
			}
		}
	}) {
		r, ok := rules[dir]
		if !ok {
			t.Errorf("%s: a package without a rule in TestPackageBoundaries", dir)
			continue
		}
		for _, f := range pkgs[dir] {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				if !allowedImport(path, r.allowed, r.forbidden) {
					t.Errorf("%s imports %s", f, path)
				}
			}
		}
	}
}

// allowedImport reports whether path is in the standard library or matches
// an allowed prefix, and matches no forbidden one. A module prefix matches
// the package itself or one below it, never a sibling sharing its start
// ("store" does not allow "storex").
func allowedImport(path string, allowed, forbidden []string) bool {
	for _, p := range forbidden {
		if path == p || strings.HasPrefix(path, p+"/") {
			return false
		}
	}
	first, _, _ := strings.Cut(path, "/")
	if !strings.Contains(first, ".") {
		return true // standard library
	}
	for _, p := range allowed {
		if path == p || strings.HasPrefix(path, strings.TrimSuffix(p, "/")+"/") {
			return true
		}
	}
	return false
}
