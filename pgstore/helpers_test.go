package pgstore

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/taskgate/taskgate/internal/pgtest"
)

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// t0 is the tests' start time, in whole microseconds as PostgreSQL keeps
// them.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)

// newTestStore opens a store on a fresh Airflow database, with fixtures on
// the same database stamped by the same clock.
func newTestStore(t testing.TB) (*DB, *pgtest.Airflow, *clock) {
	t.Helper()
	af := pgtest.NewAirflowFixtures(t)
	clk := &clock{t: t0}
	af.Now = clk.Now
	db, err := Open(context.Background(), Options{URL: af.URL, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, af, clk
}

// openReplica opens another store (another taskgate replica) on the same
// database.
func openReplica(t testing.TB, url string, clk *clock) *DB {
	t.Helper()
	db, err := Open(context.Background(), Options{URL: url, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// scanRow scans one row of a query on the store's database.
func scanRow(t testing.TB, db *DB, sql string, args []any, dest ...any) {
	t.Helper()
	if err := db.pool.QueryRow(context.Background(), sql, args...).Scan(dest...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// jsonEqual reports whether two JSON documents hold the same value.
func jsonEqual(t testing.TB, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}
