package main

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPackageBoundaries keeps dependencies pointing inward: the domain
// packages know no HTTP, JWT or storage library, only the store knows bbolt,
// and the internal helper packages use the standard library alone. A new
// package gets its rule here.
func TestPackageBoundaries(t *testing.T) {
	const mod = "github.com/taskgate/taskgate/"
	var (
		echo  = "github.com/labstack/echo"
		jwt   = "github.com/golang-jwt/jwt"
		bbolt = "go.etcd.io/bbolt"
		zap   = "go.uber.org/zap"
	)
	rules := []struct {
		dir string
		// allowed non-standard imports (prefixes); anything else outside the
		// standard library is a violation.
		allowed   []string
		forbidden []string
	}{
		{"scopes", nil, []string{"net/http"}},
		{"workload", []string{mod + "scopes"}, []string{"net/http"}},
		{"reissue", []string{mod + "scopes", echo, zap}, nil},
		{"tokens", []string{mod + "scopes", mod + "internal/atomicfile", jwt, "github.com/google/uuid"}, nil},
		{"store", []string{mod + "workload", mod + "auth", bbolt}, nil},
		{"auth", []string{mod + "scopes", "golang.org/x/crypto/bcrypt"}, []string{"net/http"}},
		{"config", nil, nil},
		{"fernet", []string{mod + "internal/atomicfile"}, nil},
		{"client", []string{mod + "workload", "github.com/google/uuid"}, nil},
		{"internal/atomicfile", nil, nil},
		{"internal/fakeclock", nil, nil},
		{"internal/fakeapi", nil, nil},
		{"gateway", []string{mod + "scopes", mod + "workload", mod + "reissue", mod + "auth", echo, zap}, nil},
	}
	for _, r := range rules {
		files, err := filepath.Glob(filepath.Join(r.dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no Go files (%v)", r.dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
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

func allowedImport(path string, allowed, forbidden []string) bool {
	for _, p := range forbidden {
		if strings.HasPrefix(path, p) {
			return false
		}
	}
	first, _, _ := strings.Cut(path, "/")
	if !strings.Contains(first, ".") {
		return true // standard library
	}
	for _, p := range allowed {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}
