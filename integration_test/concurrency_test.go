package integration_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Concurrency against the real binary (built with -race
// when the tests run with -race, so a data race in the server fails the
// run through its log and exit code).

// taskHeaders are the headers a Task SDK client sends with token.
func taskHeaders(token string) map[string]string {
	return map[string]string{
		"Authorization":       "Bearer " + token,
		"Content-Type":        "application/json",
		"Airflow-API-Version": apiVersion,
	}
}

// conflictDetail is the structured detail of a 409.
type conflictDetail struct {
	Reason        string `json:"reason"`
	PreviousState string `json:"previous_state"`
	CurrentState  string `json:"current_state"`
}

func conflictOf(body []byte) conflictDetail {
	var b struct {
		Detail conflictDetail `json:"detail"`
	}
	_ = json.Unmarshal(body, &b)
	return b.Detail
}

// TestConcurrentRunExactlyOnce: 100 workers race to start one queued task
// instance with its workload token, each from its own pid. Exactly one
// wins (200, with an execution token); every other gets 409 invalid_state
// with previous_state running and no token. The winner — and only the
// winner — can then heartbeat. Then 100 identical /run calls from one
// worker (a client retrying) are all answered 200.
func TestConcurrentRunExactlyOnce(t *testing.T) {
	dataDir := newDataDir(t)
	rounds := soakScaled(3, 30)
	const callers = 100
	tis := make([]queued, rounds+1)
	for i := range tis {
		tis[i] = queueTask(t, dataDir, "race_dag", "manual__race", fmt.Sprintf("t%d", i))
	}
	srv := startServer(t, dataDir, noAuthLimit)
	client := newPooledClient(callers)

	type answer struct {
		who    host
		status int
		token  string
		body   []byte
		err    error
	}
	race := func(q queued, hostOf func(i int) host) []answer {
		answers := make([]answer, callers)
		bodies := make([][]byte, callers)
		for i := range answers {
			answers[i].who = hostOf(i)
			bodies[i] = []byte(answers[i].who.runPayload(t))
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range answers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				res, err := doPlain(client, "PATCH", srv.URL+tiPath(q.TIID, "run"), taskHeaders(q.Token), bodies[i])
				if err != nil {
					answers[i].err = err
					return
				}
				answers[i].status, answers[i].body = res.status, res.body
				answers[i].token = res.header.Get("Refreshed-API-Token")
			}()
		}
		close(start)
		wg.Wait()
		return answers
	}

	started := time.Now()
	for r := 0; r < rounds; r++ {
		q := tis[r]
		answers := race(q, func(i int) host { return host{fmt.Sprintf("worker-%d", i%7), "airflow", 10000 + i} })
		var winners []answer
		conflicts := 0
		for _, a := range answers {
			switch {
			case a.err != nil:
				t.Errorf("round %d, pid %d: %v", r, a.who.pid, a.err)
			case a.status == http.StatusOK:
				winners = append(winners, a)
				if a.token == "" {
					t.Errorf("round %d: the winning /run carries no execution token", r)
				}
			case a.status == http.StatusConflict:
				conflicts++
				if d := conflictOf(a.body); d.Reason != "invalid_state" || d.PreviousState != "running" {
					t.Errorf("round %d, pid %d: 409 %s, want invalid_state with previous_state running", r, a.who.pid, a.body)
				}
				if a.token != "" {
					t.Errorf("round %d, pid %d: a refused /run handed out an execution token", r, a.who.pid)
				}
			default:
				t.Errorf("round %d, pid %d: %d %s, want 200 or 409", r, a.who.pid, a.status, a.body)
			}
		}
		if len(winners) != 1 || conflicts != callers-1 {
			t.Fatalf("round %d: %d × 200 and %d × 409 from %d concurrent /run, want exactly one 200", r, len(winners), conflicts, callers)
		}
		win := winners[0]
		wantNoContent(t, newWorker(t, srv.URL, win.token).do("PUT", tiPath(q.TIID, "heartbeat"), win.who.heartbeat(t)), 204)
		loser := answers[0].who
		if loser == win.who {
			loser = answers[1].who
		}
		r := newWorker(t, srv.URL, win.token).do("PUT", tiPath(q.TIID, "heartbeat"), loser.heartbeat(t))
		if d := conflictOf(r.body); r.status != 409 || d.Reason != "running_elsewhere" {
			t.Errorf("%s: a losing pid's heartbeat, want 409 running_elsewhere", r)
		}
	}

	// A retrying client: the same hostname, unixname and pid every time.
	q := tis[rounds]
	same := host{"worker-retry", "airflow", 19999}
	answers := race(q, func(int) host { return same })
	for _, a := range answers {
		if a.err != nil || a.status != http.StatusOK || a.token == "" {
			t.Errorf("identical /run from one worker: %d %s (%v), want 200 with a token", a.status, a.body, a.err)
		}
	}
	wantNoContent(t, newWorker(t, srv.URL, answers[0].token).do("PUT", tiPath(q.TIID, "heartbeat"), same.heartbeat(t)), 204)
	t.Logf("%d rounds of %d concurrent /run (+1 round of identical retries) in %s", rounds, callers, time.Since(started).Round(time.Millisecond))
	client.CloseIdleConnections() // or a spare dial of the pool holds up the graceful stop
	srv.stop()
}

// lifecycleEvent is one request of TestConcurrentHeartbeatsAndStateChanges.
type lifecycleEvent struct {
	kind     string // "heartbeat", "run", "state:<state>"
	actor    int    // goroutine
	sent     time.Time
	received time.Time
	status   int
	body     []byte
	err      error
}

// TestConcurrentHeartbeatsAndStateChanges drives many task instances at
// once, each with heartbeating goroutines, a goroutine retrying its /run
// (allowed while running, from the same worker) and goroutines reporting
// different final states. Whatever the interleaving:
//   - exactly one state change is applied (204); every other is 409 naming
//     the applied state;
//   - no heartbeat or /run sent after that 204 was received succeeds, and
//     every 409 names the applied state: the state never goes back;
//   - per goroutine, nothing succeeds after a conflict was received;
//   - when up_for_retry is the applied state, the attempt is archived at
//     once (as Airflow does): what the try's tokens send after it may be
//     answered 410 instead of 409.
func TestConcurrentHeartbeatsAndStateChanges(t *testing.T) {
	dataDir := newDataDir(t)
	n := soakScaled(8, 64)
	tis := make([]queued, n)
	for i := range tis {
		tis[i] = queueTask(t, dataDir, "hb_dag", "manual__hb", fmt.Sprintf("t%d", i))
	}
	srv := startServer(t, dataDir, noAuthLimit)
	client := newPooledClient(16 * n)
	finals := []string{"success", "failed", "skipped", "up_for_retry", "removed"}
	statePayload := func(state string) []byte {
		p := map[string]any{"state": state, "end_date": sdkTime(time.Now())}
		if state == "success" {
			p["task_outlets"], p["outlet_events"] = []any{}, []any{}
		}
		return []byte(mustJSON(t, p))
	}
	started := time.Now()
	var total, totalMu = 0, sync.Mutex{}
	var wg sync.WaitGroup
	for i, q := range tis {
		wg.Add(1)
		go func() {
			defer wg.Done()
			me := host{fmt.Sprintf("worker-%d", i), "airflow", 20000 + i}
			res, err := doPlain(client, "PATCH", srv.URL+tiPath(q.TIID, "run"), taskHeaders(q.Token), []byte(me.runPayload(t)))
			if err != nil || res.status != 200 {
				t.Errorf("ti %d: /run: %v %v", i, res, err)
				return
			}
			token := res.header.Get("Refreshed-API-Token")
			events := runLifecycleRace(client, srv.URL, q, token, []byte(me.heartbeat(t)), []byte(me.runPayload(t)), finals, statePayload, i)
			checkLifecycleRace(t, fmt.Sprintf("ti %d", i), events)
			totalMu.Lock()
			total += len(events)
			totalMu.Unlock()
			// Afterwards, too: the applied state stays.
			var applied string
			for _, e := range events {
				if strings.HasPrefix(e.kind, "state:") && e.status == 204 {
					applied = strings.TrimPrefix(e.kind, "state:")
				}
			}
			res, err = doPlain(client, "PUT", srv.URL+tiPath(q.TIID, "heartbeat"), taskHeaders(token), []byte(me.heartbeat(t)))
			switch {
			case applied == "up_for_retry": // archived at once
				if err != nil || res.status != 410 {
					t.Errorf("ti %d: final heartbeat: %v %v, want 410 (archived attempt)", i, res, err)
				}
			case err != nil || res.status != 409 || conflictOf(res.body).CurrentState != applied:
				t.Errorf("ti %d: final heartbeat: %v %v, want 409 not_running, current_state %s", i, res, err, applied)
			}
			res, err = doPlain(client, "PATCH", srv.URL+tiPath(q.TIID, "run"), taskHeaders(q.Token), []byte(me.runPayload(t)))
			switch {
			case applied == "up_for_retry":
				if err != nil || res.status != 410 {
					t.Errorf("ti %d: final /run: %v %v, want 410 (archived attempt)", i, res, err)
				}
			case err != nil || res.status != 409 || conflictOf(res.body).PreviousState != applied:
				t.Errorf("ti %d: final /run: %v %v, want 409 invalid_state, previous_state %s", i, res, err, applied)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d task instances, %d concurrent requests checked in %s", n, total, time.Since(started).Round(time.Millisecond))
	srv.mustBeAlive(t)
	client.CloseIdleConnections() // or a spare dial of the pool holds up the graceful stop
	srv.stop()
}

// runLifecycleRace runs the goroutines of one task instance and returns
// every request they made.
func runLifecycleRace(client *http.Client, base string, q queued, token string, hb, run []byte, finals []string,
	statePayload func(string) []byte, seed int) []lifecycleEvent {
	var (
		mu     sync.Mutex
		events []lifecycleEvent
		wg     sync.WaitGroup
	)
	record := func(e lifecycleEvent) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	do := func(kind string, actor int, method, path, tok string, body []byte) lifecycleEvent {
		e := lifecycleEvent{kind: kind, actor: actor, sent: time.Now()}
		res, err := doPlain(client, method, base+path, taskHeaders(tok), body)
		e.received = time.Now()
		if err != nil {
			e.err = err
		} else {
			e.status, e.body = res.status, res.body
		}
		record(e)
		return e
	}
	// Keep going until a conflict, then a few more, to probe after the end.
	loop := func(kind string, actor int, method, path, tok string, body []byte) {
		defer wg.Done()
		after := -1
		for i := 0; i < 400 && after != 0; i++ {
			e := do(kind, actor, method, path, tok, body)
			if e.err != nil {
				return
			}
			switch {
			case after > 0:
				after--
			case e.status == http.StatusConflict:
				after = 3
			}
		}
	}
	actor := 0
	for h := 0; h < 3; h++ {
		wg.Add(1)
		go loop("heartbeat", actor, "PUT", tiPath(q.TIID, "heartbeat"), token, hb)
		actor++
	}
	wg.Add(1)
	go loop("run", actor, "PATCH", tiPath(q.TIID, "run"), q.Token, run)
	actor++
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	for _, st := range finals {
		delay := time.Duration(rng.IntN(30)) * time.Millisecond
		a := actor
		actor++
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(delay)
			do("state:"+st, a, "PATCH", tiPath(q.TIID, "state"), token, statePayload(st))
		}()
	}
	wg.Wait()
	sort.Slice(events, func(i, j int) bool { return events[i].sent.Before(events[j].sent) })
	return events
}

// checkLifecycleRace checks the invariants of one task instance's events.
func checkLifecycleRace(t *testing.T, name string, events []lifecycleEvent) {
	var applied *lifecycleEvent
	for i := range events {
		e := &events[i]
		if e.err != nil {
			t.Errorf("%s: %s: %v", name, e.kind, e.err)
			return
		}
		if e.status >= 500 {
			t.Errorf("%s: %s: server error %d %s", name, e.kind, e.status, e.body)
		}
		if strings.HasPrefix(e.kind, "state:") && e.status == http.StatusNoContent {
			if applied != nil {
				t.Errorf("%s: two state changes applied: %s and %s", name, applied.kind, e.kind)
			}
			applied = e
		}
	}
	if applied == nil {
		t.Errorf("%s: no state change was applied", name)
		return
	}
	state := strings.TrimPrefix(applied.kind, "state:")
	lastConflict := map[int]time.Time{}
	for _, e := range events {
		c := conflictOf(e.body)
		switch {
		case state == "up_for_retry" && e.status == http.StatusGone && c.Reason == "not_found":
			// up_for_retry archives the attempt at once, as Airflow does:
			// whatever its token sends afterwards is answered 410.
			if e.received.Before(applied.sent) {
				t.Errorf("%s: %s answered 410 before up_for_retry was sent", name, e.kind)
			}
		case strings.HasPrefix(e.kind, "state:"):
			if e.status == http.StatusNoContent {
				continue
			}
			if e.status != http.StatusConflict || c.Reason != "invalid_state" || c.PreviousState != state {
				t.Errorf("%s: %s: %d %s, want 409 invalid_state with previous_state %s", name, e.kind, e.status, e.body, state)
			}
		case e.status == http.StatusConflict:
			want := c.CurrentState // heartbeat: not_running
			if e.kind == "run" {
				want = c.PreviousState
			}
			if want != state {
				t.Errorf("%s: %s: 409 %s names another state than the applied %s", name, e.kind, e.body, state)
			}
		case e.status == http.StatusNoContent || e.status == http.StatusOK:
			if e.sent.After(applied.received) {
				t.Errorf("%s: %s sent %s after %s was acknowledged succeeded (%d)", name, e.kind,
					e.sent.Sub(applied.received), applied.kind, e.status)
			}
			if lc, ok := lastConflict[e.actor]; ok && e.sent.After(lc) {
				t.Errorf("%s: %s succeeded after the same client was told the task left running", name, e.kind)
			}
		default:
			t.Errorf("%s: %s: %d %s", name, e.kind, e.status, e.body)
		}
		if e.status == http.StatusConflict || e.status == http.StatusGone {
			if _, ok := lastConflict[e.actor]; !ok {
				lastConflict[e.actor] = e.received
			}
		}
	}
}
