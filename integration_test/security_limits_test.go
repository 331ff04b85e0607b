package integration_test

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// TestGarbageTokensDoNotLockOutAWorker: an unauthenticated client on the
// worker's address (every worker behind a NAT or proxy shares one) sends
// enough garbage tokens to trip the address's auth-failure limit. The
// garbage is answered 429, but the worker's own heartbeats, reads and final
// state report are served: a limit that unauthenticated traffic fills never
// refuses a valid token.
func TestGarbageTokensDoNotLockOutAWorker(t *testing.T) {
	dataDir := newDataDir(t)
	q := queueTask(t, dataDir, "nat_dag", "manual__nat", "t")
	mustCLI(t, dataDir, "variables", "set", "nat_var", "v")
	srv := startServer(t, dataDir, "AIRFLOW__TASKGATE__AUTH_FAILURES_PER_MINUTE=5")
	me := host{"worker-nat", "airflow", 7301}
	w := newWorker(t, srv.URL, q.Token)
	mustStatus(t, w.do("PATCH", tiPath(q.TIID, "run"), me.runPayload(t)), 200)

	attacker := newWorker(t, srv.URL, "garbage.garbage.garbage")
	limited := 0
	for i := 0; i < 70; i++ {
		r := attacker.do("PUT", tiPath(q.TIID, "heartbeat"), me.heartbeat(t))
		switch r.status {
		case 403:
		case 429:
			limited++
		default:
			t.Fatalf("garbage token %d: %s", i, r)
		}
	}
	if limited == 0 {
		t.Fatal("the garbage was never limited: the test did not trip the limit")
	}
	for i := 0; i < 3; i++ {
		mustStatus(t, w.do("PUT", tiPath(q.TIID, "heartbeat"), me.heartbeat(t)), 204)
		mustStatus(t, w.do("GET", variablePath("nat_var"), ""), 200)
	}
	mustStatus(t, w.do("PATCH", tiPath(q.TIID, "state"), successPayload(t)), 204)
}

// TestSlowUnauthenticatedBodiesTakeNoSlots: with max_in_flight = 4, four
// connections trickling request bodies without a valid token (and four
// trickling login bodies) hold no slot; a worker's requests are served
// while they hang.
func TestSlowUnauthenticatedBodiesTakeNoSlots(t *testing.T) {
	dataDir := newDataDir(t)
	q := queueTask(t, dataDir, "slots_dag", "manual__slots", "t")
	srv := startServer(t, dataDir, noAuthLimit, "AIRFLOW__TASKGATE__MAX_IN_FLIGHT=4")
	me := host{"worker-slots", "airflow", 7302}
	w := newWorker(t, srv.URL, q.Token)
	mustStatus(t, w.do("PATCH", tiPath(q.TIID, "run"), me.runPayload(t)), 200)

	for i := 0; i < 8; i++ {
		conn, err := net.DialTimeout("tcp", srv.rawAddr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		path, authz := variablePath("slow"), "Authorization: Bearer not.a.token\r\n"
		method := "PUT"
		if i%2 == 1 {
			path, authz, method = "/auth/token", "", "POST"
		}
		head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"val\":",
			method, path, authz)
		if _, err := conn.Write([]byte(head)); err != nil {
			t.Fatal(err)
		}
	}
	// The slow requests now sit in the server, reading their bodies.
	for i := 0; i < 10; i++ {
		mustStatus(t, w.do("PUT", tiPath(q.TIID, "heartbeat"), me.heartbeat(t)), 204)
	}
	mustStatus(t, w.do("PUT", variablePath("fast"), `{"val":"1"}`), 201)
}
