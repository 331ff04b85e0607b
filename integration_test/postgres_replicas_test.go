package integration_test

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPostgresConcurrentRunAcrossReplicas: 100 workers race to start one
// queued task instance, their /run calls spread over three replicas.
// Exactly one wins; every other gets 409 invalid_state with previous_state
// running and no token; the row names the winner.
func TestPostgresConcurrentRunAcrossReplicas(t *testing.T) {
	d := newPGDeployment(t)
	replicas := d.startReplicas(t, 3, noAuthLimit)
	m := d.minter(t)
	run := d.insertDagRun("race_dag", "manual__race")
	const callers, rounds = 100, 2
	client := newPooledClient(callers)
	defer client.CloseIdleConnections()

	for round := 0; round < rounds; round++ {
		ti := d.insertQueuedTI(run, fmt.Sprintf("t%d", round), 1, 0)
		q := ti.q(m)
		type answer struct {
			who    host
			status int
			token  string
			body   []byte
			err    error
		}
		answers := make([]answer, callers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range answers {
			answers[i].who = host{fmt.Sprintf("worker-%d", i%7), "airflow", 10000 + i}
			body := []byte(answers[i].who.runPayload(t))
			base := replicas[i%len(replicas)].URL
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				res, err := plainSend(client, base, "PATCH", tiPath(q.TIID, "run"), q.Token, body)
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

		var winners []answer
		conflicts := 0
		for _, a := range answers {
			switch {
			case a.err != nil:
				t.Errorf("round %d, pid %d: %v", round, a.who.pid, a.err)
			case a.status == http.StatusOK:
				winners = append(winners, a)
			case a.status == http.StatusConflict:
				conflicts++
				if c := conflictOf(a.body); c.Reason != "invalid_state" || c.PreviousState != "running" {
					t.Errorf("round %d, pid %d: 409 %s, want invalid_state with previous_state running", round, a.who.pid, a.body)
				}
				if a.token != "" {
					t.Errorf("round %d, pid %d: a refused /run handed out an execution token", round, a.who.pid)
				}
			default:
				t.Errorf("round %d, pid %d: %d %s, want 200 or 409", round, a.who.pid, a.status, a.body)
			}
		}
		if len(winners) != 1 || conflicts != callers-1 {
			t.Fatalf("round %d: %d × 200 and %d × 409 from %d concurrent /run on %d replicas, want exactly one 200",
				round, len(winners), conflicts, callers, len(replicas))
		}
		win := winners[0]
		row := d.taskInstance(run, ti.taskID)
		if row.state != "running" || row.hostname != win.who.hostname || row.pid == nil || *row.pid != win.who.pid {
			t.Errorf("round %d: row %s, want running on the winner %s pid %d", round, fmtRow(row), win.who.hostname, win.who.pid)
		}
		// The winner's token works on every replica; a loser's pid is
		// refused on every replica.
		for i, s := range replicas {
			wantNoContent(t, newWorker(t, s.URL, win.token).do("PUT", tiPath(q.TIID, "heartbeat"), win.who.heartbeat(t)), 204)
			loser := answers[(i+1)%callers].who
			if loser == win.who {
				loser = answers[(i+2)%callers].who
			}
			r := newWorker(t, s.URL, win.token).do("PUT", tiPath(q.TIID, "heartbeat"), loser.heartbeat(t))
			if c := conflictOf(r.body); r.status != 409 || c.Reason != "running_elsewhere" {
				t.Errorf("%s: a losing pid's heartbeat on replica %d, want 409 running_elsewhere", r, i)
			}
		}
	}
	for _, s := range replicas {
		s.stop()
	}
}

// hbTracker records, per task instance, what the replicas acknowledged:
// the send time of the last acknowledged heartbeat and whether a final
// state was acknowledged.
type hbTracker struct {
	mu        sync.Mutex
	lastAcked map[string]time.Time // ti id → send time of its last 204 heartbeat
	finished  map[string]bool      // ti id → its success was acknowledged (204)
	acks      atomic.Int64
	unavail   atomic.Int64 // 503 answers (with Retry-After)
	refused   atomic.Int64 // transport errors: a replica or the database went away mid-request
}

func newHBTracker() *hbTracker {
	return &hbTracker{lastAcked: map[string]time.Time{}, finished: map[string]bool{}}
}

func (h *hbTracker) ack(ti string, sent time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if sent.After(h.lastAcked[ti]) {
		h.lastAcked[ti] = sent
	}
	h.acks.Add(1)
}

func (h *hbTracker) finish(ti string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.finished[ti] = true
}

// hbWorker heartbeats one running task instance until stop, over the
// replicas (the next one after any failure, as an ingress retries), and
// reports its success once stop closes. 503 must carry Retry-After; any
// other answer than 204 or 503 is an error.
type hbWorker struct {
	t       *testing.T
	ti      afTI
	token   string
	me      host
	bases   func() []string // the replicas still meant to be up
	tracker *hbTracker
	client  *http.Client
	errs    chan<- string
}

func (w *hbWorker) loop(stop <-chan struct{}, finish bool) {
	hb := []byte(w.me.heartbeat(w.t))
	next := 0
	for {
		select {
		case <-stop:
			if finish {
				w.finish()
			}
			return
		default:
		}
		bases := w.bases()
		base := bases[next%len(bases)]
		sent := time.Now().Truncate(time.Microsecond)
		res, err := plainSend(w.client, base, "PUT", tiPath(w.ti.id, "heartbeat"), w.token, hb)
		switch {
		case err != nil:
			w.tracker.refused.Add(1)
			next++
		case res.status == http.StatusNoContent:
			w.tracker.ack(w.ti.id, sent)
			if tok := res.header.Get("Refreshed-API-Token"); tok != "" {
				w.token = tok
			}
		case res.status == http.StatusServiceUnavailable:
			w.tracker.unavail.Add(1)
			if res.header.Get("Retry-After") == "" {
				w.errs <- fmt.Sprintf("heartbeat of %s: 503 without Retry-After: %s", w.ti.taskID, res)
			}
			next++
			time.Sleep(10 * time.Millisecond)
		default:
			w.errs <- fmt.Sprintf("heartbeat of %s on %s: %s, want 204 or 503", w.ti.taskID, base, res)
			return
		}
	}
}

// finish reports success, retrying over the replicas until one
// acknowledges it or answers it was applied already (a retry of a state
// whose first answer was lost).
func (w *hbWorker) finish() {
	body := []byte(successPayload(w.t))
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		bases := w.bases()
		res, err := plainSend(w.client, bases[i%len(bases)], "PATCH", tiPath(w.ti.id, "state"), w.token, body)
		switch {
		case err != nil:
			continue
		case res.status == http.StatusNoContent:
			w.tracker.finish(w.ti.id)
			return
		case res.status == http.StatusConflict && conflictOf(res.body).CurrentState == "success":
			// Applied by an attempt whose answer was lost; not counted as
			// acknowledged, the check below still finds it.
			return
		case res.status == http.StatusServiceUnavailable:
			time.Sleep(20 * time.Millisecond)
		default:
			w.errs <- fmt.Sprintf("state success of %s: %s", w.ti.taskID, res)
			return
		}
	}
	w.errs <- fmt.Sprintf("state success of %s: not acknowledged within 30 s", w.ti.taskID)
}

// checkAcknowledged reads every task instance's row and requires what the
// replicas acknowledged: last_heartbeat_at at or after the send time of the
// last acknowledged heartbeat, success with an end_date where success was
// acknowledged.
func checkAcknowledged(t *testing.T, d *pgDeployment, tis []afTI, tr *hbTracker) {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, ti := range tis {
		row := d.taskInstance(ti.run, ti.taskID)
		if sent, ok := tr.lastAcked[ti.id]; ok && (row.lastHeartbeatAt == nil || row.lastHeartbeatAt.Before(sent)) {
			t.Errorf("%s: last_heartbeat_at %v is before the last acknowledged heartbeat, sent at %v: an acknowledged heartbeat was lost",
				ti.taskID, row.lastHeartbeatAt, sent)
		}
		if tr.finished[ti.id] && (row.state != "success" || row.endDate == nil) {
			t.Errorf("%s: success was acknowledged, the row is %s", ti.taskID, fmtRow(row))
		}
	}
}

// startRunning inserts n queued task instances and starts each with /run,
// round-robin over bases; it returns them with their execution tokens.
func startRunning(t *testing.T, d *pgDeployment, bases []string, dagID string, n int) ([]afTI, []string, []host) {
	t.Helper()
	m := d.minter(t)
	run := d.insertDagRun(dagID, "manual__load")
	tis := make([]afTI, n)
	tokens := make([]string, n)
	hosts := make([]host, n)
	for i := range tis {
		tis[i] = d.insertQueuedTI(run, fmt.Sprintf("task_%02d", i), 1, 0)
		hosts[i] = host{fmt.Sprintf("worker-%d.internal", i), "airflow", 20000 + i}
		w := newWorker(t, bases[i%len(bases)], tis[i].q(m).Token)
		mustStatus(t, w.do("PATCH", tiPath(tis[i].id, "run"), hosts[i].runPayload(t)), 200)
		tokens[i] = w.token
	}
	return tis, tokens, hosts
}

// TestPostgresReplicaKilledUnderHeartbeats: three replicas under heartbeat
// load; one is SIGKILLed mid-flight. The workers go on through the others;
// afterwards every heartbeat any replica acknowledged (its
// last_heartbeat_at) and every acknowledged state is in the database.
func TestPostgresReplicaKilledUnderHeartbeats(t *testing.T) {
	d := newPGDeployment(t)
	replicas := d.startReplicas(t, 3, noAuthLimit)
	all := []string{replicas[0].URL, replicas[1].URL, replicas[2].URL}
	const n = 24
	tis, tokens, hosts := startRunning(t, d, all, "kill_dag", n)

	var killed atomic.Bool
	bases := func() []string {
		if killed.Load() {
			return all[1:]
		}
		return all
	}
	tr := newHBTracker()
	errs := make(chan string, 4*n)
	client := newPooledClient(2 * n)
	defer client.CloseIdleConnections()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range tis {
		w := &hbWorker{t: t, ti: tis[i], token: tokens[i], me: hosts[i], bases: bases, tracker: tr, client: client, errs: errs}
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(stop, i%2 == 0) // half of them finish after the kill
		}()
	}
	// Load on all three, then the kill while requests are in flight.
	waitFor(t, 20*time.Second, "heartbeats acknowledged before the kill", func() (bool, string) {
		return tr.acks.Load() >= 10*n, fmt.Sprintf("%d acknowledged", tr.acks.Load())
	})
	replicas[0].kill()
	killed.Store(true)
	atKill := tr.acks.Load()
	waitFor(t, 20*time.Second, "heartbeats acknowledged by the surviving replicas", func() (bool, string) {
		return tr.acks.Load() >= atKill+5*n, fmt.Sprintf("%d acknowledged since the kill", tr.acks.Load()-atKill)
	})
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	t.Logf("%d heartbeats acknowledged (%d before the kill), %d refused connections, %d × 503",
		tr.acks.Load(), atKill, tr.refused.Load(), tr.unavail.Load())
	checkAcknowledged(t, d, tis, tr)
	if len(tr.finished) != n/2 {
		t.Errorf("%d of %d successes acknowledged", len(tr.finished), n/2)
	}
	for _, s := range replicas[1:] {
		s.stop()
	}
}
