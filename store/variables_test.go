package store

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/taskgate/taskgate/workload"
)

func TestVariables(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	if _, err := db.Variable(ctx, "k"); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("Variable before put: %v, want ErrNotFound", err)
	}
	want := workload.Variable{Key: "k/é:1", Value: ptr(`{"json": true}`), Description: ptr("why")}
	if err := db.PutVariable(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := db.Variable(ctx, want.Key)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("Variable (-want +got):\n%s", diff)
	}
	replaced := workload.Variable{Key: want.Key} // nil value is kept as nil
	if err := db.PutVariable(ctx, replaced); err != nil {
		t.Fatal(err)
	}
	if got, err = db.Variable(ctx, want.Key); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&replaced, got); diff != "" {
		t.Errorf("replaced Variable (-want +got):\n%s", diff)
	}
	for range 2 { // deleting a missing key is not an error
		if err := db.DeleteVariable(ctx, want.Key); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Variable(ctx, want.Key); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("Variable after delete: %v, want ErrNotFound", err)
	}
}

func TestVariableKeys(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	for _, k := range []string{"b", "a2", "a1", "a10", "ab", "a", "c", "é"} {
		if err := db.PutVariable(ctx, workload.Variable{Key: k, Value: ptr("v")}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name          string
		prefix        string
		limit, offset int
		want          []string
		wantTotal     int
	}{
		{"all", "", 0, 0, []string{"a", "a1", "a10", "a2", "ab", "b", "c", "é"}, 8},
		{"prefix", "a", 0, 0, []string{"a", "a1", "a10", "a2", "ab"}, 5},
		{"prefix limit", "a", 2, 0, []string{"a", "a1"}, 5},
		{"prefix limit offset", "a", 2, 2, []string{"a10", "a2"}, 5},
		{"offset to the end", "a", 10, 4, []string{"ab"}, 5},
		{"offset past end", "a", 10, 9, []string{}, 5},
		{"narrow prefix", "a1", 0, 0, []string{"a1", "a10"}, 2},
		{"unicode prefix", "é", 0, 0, []string{"é"}, 1},
		{"no match", "zz", 5, 0, []string{}, 0},
		{"negative offset", "b", 0, -3, []string{"b"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, total, err := db.VariableKeys(ctx, tt.prefix, tt.limit, tt.offset)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
			if total != tt.wantTotal {
				t.Errorf("total %d, want %d", total, tt.wantTotal)
			}
		})
	}
	all, err := db.ListVariables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 8 || all[0].Key != "a" || all[7].Key != "é" {
		t.Errorf("ListVariables = %v", all)
	}
}

func TestConnections(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	if _, err := db.Connection(ctx, "pg"); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("Connection before put: %v, want ErrNotFound", err)
	}
	list, err := db.ListConnections(ctx)
	if err != nil || list == nil || len(list) != 0 {
		t.Errorf("ListConnections on empty = %v, %v", list, err)
	}
	conns := []workload.Connection{
		{ConnID: "pg", ConnType: "postgres", Host: ptr("db"), Schema: ptr("s"), Login: ptr("u"), Password: ptr("p@ss"), Port: ptr(5432), Extra: ptr(`{"sslmode":"require"}`)},
		{ConnID: "http/default", ConnType: "http"},
	}
	for _, c := range conns {
		if err := db.PutConnection(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.Connection(ctx, "pg")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&conns[0], got); diff != "" {
		t.Errorf("Connection (-want +got):\n%s", diff)
	}
	list, err = db.ListConnections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]workload.Connection{conns[1], conns[0]}, list); diff != "" {
		t.Errorf("ListConnections (-want +got):\n%s", diff)
	}
	for range 2 {
		if err := db.DeleteConnection(ctx, "pg"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Connection(ctx, "pg"); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("Connection after delete: %v, want ErrNotFound", err)
	}
}
