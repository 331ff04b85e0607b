package auth

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/bcrypt"

	"github.com/taskgate/taskgate/scopes"
)

func TestParseRole(t *testing.T) {
	tests := []struct {
		in      string
		want    Role
		wantErr bool
	}{
		{"admin", RoleAdmin, false},
		{"op", RoleOp, false},
		{"viewer", RoleViewer, false},
		{"Admin", "", true},
		{"ADMIN", "", true},
		{" admin", "", true},
		{"", "", true},
		{"root", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRole(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ParseRole(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "auth: unknown role ") {
				t.Errorf("error %q", err)
			}
		})
	}
}

func TestRoleAtLeast(t *testing.T) {
	roles := []Role{RoleViewer, RoleOp, RoleAdmin}
	for i, r := range roles {
		for j, min := range roles {
			if got, want := r.AtLeast(min), i >= j; got != want {
				t.Errorf("%s.AtLeast(%s) = %v, want %v", r, min, got, want)
			}
		}
	}
	for _, tt := range []struct {
		name     string
		r, min   Role
		expected bool
	}{
		{"unknown role is below viewer", "root", RoleViewer, false},
		{"empty role is below viewer", "", RoleViewer, false},
		{"unknown minimum fails closed", RoleAdmin, "superuser", false},
		{"unknown against unknown", "x", "x", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.AtLeast(tt.min); got != tt.expected {
				t.Errorf("%q.AtLeast(%q) = %v, want %v", tt.r, tt.min, got, tt.expected)
			}
		})
	}
}

func TestValidUserName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"alice", true},
		{"a", true},
		{"Alice.Smith_2@example.com", true},
		{"svc-deploy", true},
		{"_x", true},
		{"...", true},
		{strings.Repeat("x", 64), true},
		{strings.Repeat("x", 65), false},
		{"", false},
		{"-alice", false},
		{".", false},
		{"..", false},
		{"al ice", false},
		{"al/ice", false},
		{"al:ice", false},
		{"alicé", false},
		{"a\x00b", false},
		{"a+b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidUserName(tt.name)
			if (err == nil) != tt.ok {
				t.Fatalf("ValidUserName(%q) = %v, want ok %v", tt.name, err, tt.ok)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "auth: ") {
				t.Errorf("error %q", err)
			}
		})
	}
}

func TestHashPassword(t *testing.T) {
	tests := []struct {
		name     string
		password string
		cost     int
		wantCost int // 0: an error is expected
	}{
		{"7 bytes too short", strings.Repeat("p", 7), bcrypt.MinCost, 0},
		{"8 bytes", strings.Repeat("p", 8), bcrypt.MinCost, bcrypt.MinCost},
		{"72 bytes", strings.Repeat("p", 72), bcrypt.MinCost, bcrypt.MinCost},
		{"73 bytes too long", strings.Repeat("p", 73), bcrypt.MinCost, 0},
		{"72 bytes multibyte", strings.Repeat("é", 36), bcrypt.MinCost, bcrypt.MinCost},
		{"74 bytes multibyte", strings.Repeat("é", 37), bcrypt.MinCost, 0},
		{"cost below bcrypt's range", "password", bcrypt.MinCost - 1, 0},
		{"cost above bcrypt's range", "password", bcrypt.MaxCost + 1, 0},
		{"negative cost", "password", -1, 0},
		{"cost 5", "password", 5, 5},
		{"zero cost is bcrypt's default", "password", 0, bcrypt.DefaultCost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := HashPassword(tt.password, tt.cost)
			if tt.wantCost == 0 {
				if err == nil {
					t.Fatalf("HashPassword succeeded: %q", h)
				}
				if !strings.HasPrefix(err.Error(), "auth: ") || strings.Contains(err.Error(), tt.password) {
					t.Errorf("error %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cost, err := bcrypt.Cost([]byte(h)); err != nil || cost != tt.wantCost {
				t.Errorf("bcrypt.Cost = %d, %v; want %d", cost, err, tt.wantCost)
			}
			if err := bcrypt.CompareHashAndPassword([]byte(h), []byte(tt.password)); err != nil {
				t.Errorf("hash does not match its password: %v", err)
			}
		})
	}
}

func TestNewUser(t *testing.T) {
	local := time.FixedZone("x", 3600)
	u, err := NewUser("alice", RoleOp, "correct horse", bcrypt.MinCost, t0.In(local))
	if err != nil {
		t.Fatal(err)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte("correct horse")); err != nil {
		t.Errorf("hash: %v", err)
	}
	want := User{Name: "alice", Role: RoleOp, PasswordHash: u.PasswordHash, CreatedAt: t0, Generation: u.Generation}
	if diff := cmp.Diff(want, u); diff != "" {
		t.Errorf("NewUser (-want +got):\n%s", diff)
	}
	// Adding the same name again is a new generation: the old one's tokens
	// must not match it.
	again, err := NewUser("alice", RoleOp, "correct horse", bcrypt.MinCost, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Generation) != 32 || again.Generation == u.Generation {
		t.Errorf("generations %q and %q: want two different 32-digit values", u.Generation, again.Generation)
	}
	for _, tt := range []struct {
		name, user string
		role       Role
		password   string
	}{
		{"bad name", "-x", RoleOp, "correct horse"},
		{"bad role", "alice", "root", "correct horse"},
		{"short password", "alice", RoleOp, "short"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewUser(tt.user, tt.role, tt.password, bcrypt.MinCost, t0); err == nil {
				t.Error("NewUser succeeded")
			}
		})
	}
}

func TestParseComponentKind(t *testing.T) {
	tests := []struct {
		in      string
		want    ComponentKind
		wantErr bool
	}{
		{"triggerer", Triggerer, false},
		{"dag-processor", DagProcessor, false},
		{"dag_processor", "", true},
		{"Triggerer", "", true},
		{"scheduler", "", true},
		{"", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseComponentKind(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ParseComponentKind(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestNewComponent(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		c, err := NewComponent(Triggerer, "triggerer-1", "ada", t0)
		if err != nil {
			t.Fatal(err)
		}
		canon, ok := scopes.CanonicalUUID(c.ID)
		if !ok || canon != c.ID {
			t.Fatalf("id %q is not a canonical UUID", c.ID)
		}
		if c.ID[14] != '4' || !strings.ContainsRune("89ab", rune(c.ID[19])) {
			t.Fatalf("id %q is not a version 4 UUID", c.ID)
		}
		if seen[c.ID] {
			t.Fatalf("id %q repeated", c.ID)
		}
		seen[c.ID] = true
		want := Component{ID: c.ID, Kind: Triggerer, Name: "triggerer-1", CreatedAt: t0, RegisteredBy: "ada"}
		if diff := cmp.Diff(want, c); diff != "" {
			t.Fatalf("NewComponent (-want +got):\n%s", diff)
		}
	}
	if _, err := NewComponent("scheduler", "s", "", t0); err == nil {
		t.Error("NewComponent accepted an unknown kind")
	}
	if _, err := NewComponent(DagProcessor, "bad name", "", t0); err == nil {
		t.Error("NewComponent accepted a bad name")
	}
}
