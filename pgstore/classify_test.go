package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/taskgate/taskgate/workload"
)

// TestClassify: what a lost or refusing database returns becomes
// workload.ErrUnavailable (503 on the wire); everything else, a query's own
// failure included, stays as it is.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name        string
		err         error
		unavailable bool
	}{
		{"nil", nil, false},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"cannot connect now", &pgconn.PgError{Code: "57P03"}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"network error", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
		{"closed connection", fmt.Errorf("read: %w", net.ErrClosed), true},
		{"already unavailable", fmt.Errorf("x: %w", workload.ErrUnavailable), true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"serialization failure", &pgconn.PgError{Code: "40001"}, false},
		{"malformed code", &pgconn.PgError{Code: "5"}, false},
		{"canceled by the caller", context.Canceled, false},
		{"a plain error", io.ErrUnexpectedEOF, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := classify(tc.err)
			if is := errors.Is(got, workload.ErrUnavailable); is != tc.unavailable {
				t.Errorf("classify(%v) = %v: unavailable %v, want %v", tc.err, got, is, tc.unavailable)
			}
			if !errors.Is(got, tc.err) {
				t.Errorf("classify(%v) = %v lost the cause", tc.err, got)
			}
		})
	}
}
