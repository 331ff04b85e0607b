package integration_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestPostgresDatabaseRestartUnderLoad: two replicas under heartbeat load on
// a throwaway PostgreSQL cluster, which is stopped (fast shutdown, every
// session terminated) and started again. While it is down every answer is
// 503 with Retry-After, never another 5xx; the replicas recover by
// themselves when it is back; nothing they acknowledged is lost.
func TestPostgresDatabaseRestartUnderLoad(t *testing.T) {
	cluster := newPGCluster(t)
	d := newPGDeploymentAt(t, cluster.newAirflowDB(t))
	replicas := d.startReplicas(t, 2, noAuthLimit)
	bases := []string{replicas[0].URL, replicas[1].URL}
	const n = 16
	tis, tokens, hosts := startRunning(t, d, bases, "restart_dag", n)

	tr := newHBTracker()
	errs := make(chan string, 4*n)
	client := newPooledClient(2 * n)
	defer client.CloseIdleConnections()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range tis {
		w := &hbWorker{t: t, ti: tis[i], token: tokens[i], me: hosts[i], bases: func() []string { return bases },
			tracker: tr, client: client, errs: errs}
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(stop, true)
		}()
	}
	waitFor(t, 20*time.Second, "heartbeats acknowledged before the restart", func() (bool, string) {
		return tr.acks.Load() >= 10*n, fmt.Sprintf("%d acknowledged", tr.acks.Load())
	})

	cluster.stop()
	down := tr.acks.Load()
	// While the database is down: 503s, and no acknowledgement.
	waitFor(t, 20*time.Second, "503 answers while the database is down", func() (bool, string) {
		return tr.unavail.Load() >= int64(n), fmt.Sprintf("%d × 503", tr.unavail.Load())
	})
	// A worker's view while it is down, checked by hand once: the
	// heartbeat's answer and the health endpoint's.
	res, err := plainSend(client, bases[0], "PUT", tiPath(tis[0].id, "heartbeat"), tokens[0], []byte(hosts[0].heartbeat(t)))
	if err != nil || res.status != http.StatusServiceUnavailable || res.header.Get("Retry-After") == "" {
		t.Errorf("heartbeat with the database down: %v %v, want 503 with Retry-After", res, err)
	}
	// A heartbeat the server could not commit is never acknowledged; the
	// few in flight at the stop may have committed just before it.
	if got := tr.acks.Load() - down; got > n {
		t.Errorf("%d heartbeats acknowledged after the database stopped, want at most those in flight (%d)", got, n)
	}

	cluster.start()
	d.pool.Reset() // the test's own connections died with the server
	up := tr.acks.Load()
	waitFor(t, 30*time.Second, "heartbeats acknowledged again after the database came back", func() (bool, string) {
		return tr.acks.Load() >= up+5*n, fmt.Sprintf("%d acknowledged since the restart", tr.acks.Load()-up)
	})
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	t.Logf("%d heartbeats acknowledged, %d × 503 with Retry-After, %d transport errors",
		tr.acks.Load(), tr.unavail.Load(), tr.refused.Load())
	checkAcknowledged(t, d, tis, tr)
	if len(tr.finished) != n {
		t.Errorf("%d of %d successes acknowledged after the restart", len(tr.finished), n)
	}
	for _, s := range replicas {
		s.stop()
	}
}
