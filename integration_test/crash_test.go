package integration_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Crash safety. The gateway acknowledges a write only
// after it is durable, so after a SIGKILL at any moment every acknowledged
// write must be there, and the database must open cleanly.

// crashWorker is one simulated task worker and everything the gateway
// acknowledged to it. "maybe" fields hold a write that was in flight when
// the server died: it may or may not have been applied.
type crashWorker struct {
	id    int
	ti    queued
	me    host
	token string // execution token, once /run was acknowledged

	started    bool      // /run acknowledged
	lastAlive  time.Time // wall time a heartbeat (or /run) that was acknowledged was sent
	final      string    // acknowledged final state
	finalMaybe string    // state change in flight at a kill
	seq        int

	vars, xcoms           map[string]string // acknowledged unique keys → value
	newVars, newXComs     []string          // acknowledged since the last check
	lastVar, lastVarMaybe string            // the worker's overwritten variable
	lastX, lastXMaybe     string            // the worker's overwritten XCom

	acked int // writes acknowledged in all
}

func (w *crashWorker) lastVarKey() string { return fmt.Sprintf("crash_last_%d", w.id) }

// TestCrashKillUnderWriteLoad runs the real binary under a write load of
// /run, heartbeats, variable sets, XCom pushes and state changes from
// several workers, kills it with SIGKILL at a random moment, checks the
// bbolt file with bbolt's own consistency check, restarts it and checks
// every write acknowledged before the kill — many times over (5 kills in
// `make test`, 50 under SOAK=1).
func TestCrashKillUnderWriteLoad(t *testing.T) {
	kills := soakScaled(5, 50)
	nWorkers := soakScaled(6, 8)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, 1))
	dataDir := newDataDir(t)
	const dagID, runID = "crash_dag", "manual__crash"
	workers := make([]*crashWorker, nWorkers)
	for i := range workers {
		workers[i] = &crashWorker{
			id: i, ti: queueTask(t, dataDir, dagID, runID, fmt.Sprintf("t%d", i)),
			me:   host{fmt.Sprintf("crash-worker-%d", i), "airflow", 30000 + i},
			vars: map[string]string{}, xcoms: map[string]string{},
		}
	}
	const admin, adminPassword = "crash-admin", "crash-admin-password-0123456789"
	crashAddUser(t, dataDir, admin, "admin", adminPassword)
	client := newPooledClient(4 * nWorkers)
	var restToken string
	// The reader is a task that runs for the whole test: finished tasks'
	// tokens no longer read, so the check reads through its token.
	readerTI := queueTask(t, dataDir, dagID, runID, "reader")
	var reader string

	dbPath := filepath.Join(dataDir, "taskgate.db")
	started := time.Now()
	totalAcked := 0
	for cycle := 0; ; cycle++ {
		srv := startServer(t, dataDir, noAuthLimit)
		if restToken == "" {
			restToken = crashLogin(t, srv.URL, admin, adminPassword)
			w := newWorker(t, srv.URL, readerTI.Token)
			mustStatus(t, w.do("PATCH", tiPath(readerTI.TIID, "run"), host{"crash-reader", "airflow", 29999}.runPayload(t)), 200)
			reader = w.token
		}
		if cycle > 0 {
			crashVerify(t, client, srv.URL, restToken, reader, dagID, runID, workers, rng, false)
		}
		if cycle == kills {
			crashVerify(t, client, srv.URL, restToken, reader, dagID, runID, workers, rng, true)
			client.CloseIdleConnections()
			srv.stop()
			break
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, w := range workers {
			wg.Add(1)
			wseed := rng.Uint64()
			go func() {
				defer wg.Done()
				crashLoad(t, client, srv.URL, w, stop, mrand.New(mrand.NewPCG(wseed, 2)))
			}()
		}
		time.Sleep(time.Duration(50+rng.IntN(400)) * time.Millisecond)
		srv.kill()
		close(stop)
		wg.Wait()
		checkBolt(t, dbPath)
		if t.Failed() {
			t.FailNow()
		}
	}
	for _, w := range workers {
		totalAcked += w.acked
	}
	t.Logf("%d SIGKILLs under load from %d workers: %d acknowledged writes, all present after every restart (%s)",
		kills, nWorkers, totalAcked, time.Since(started).Round(time.Millisecond))
}

// crashLoad is one worker's load until the server dies (or stop closes).
// Every request is sequential, so at most one write is in flight at a kill.
func crashLoad(t *testing.T, c *http.Client, base string, w *crashWorker, stop <-chan struct{}, rng *mrand.Rand) {
	do := func(method, path, token, body string) (*plainResult, error) {
		return doPlain(c, method, base+path, taskHeaders(token), []byte(body))
	}
	unexpected := func(what string, r *plainResult) {
		t.Errorf("worker %d: %s: %s", w.id, what, r)
	}
	for {
		select {
		case <-stop:
			return
		default:
		}
		if !w.started {
			sent := time.Now()
			r, err := do("PATCH", tiPath(w.ti.TIID, "run"), w.ti.Token, w.me.runPayload(t))
			if err != nil {
				return // in flight at the kill: the next life retries it (a duplicate /run is a 200)
			}
			if r.status != 200 {
				unexpected("/run", r)
				return
			}
			w.started, w.token, w.lastAlive = true, r.header.Get("Refreshed-API-Token"), sent
			w.acked++
			continue
		}
		running := w.final == "" && w.finalMaybe == ""
		if !running {
			return // the task reported its end: its token writes nothing more
		}
		w.seq++
		val := strconv.Itoa(w.seq)
		switch op := rng.IntN(100); {
		case op < 30 && running:
			sent := time.Now()
			r, err := do("PUT", tiPath(w.ti.TIID, "heartbeat"), w.token, w.me.heartbeat(t))
			if err != nil {
				return
			}
			if r.status != 204 {
				unexpected("heartbeat", r)
				return
			}
			w.lastAlive = sent
		case op < 50:
			key := fmt.Sprintf("crash_%d_%d", w.id, w.seq)
			r, err := do("PUT", variablePath(key), w.token, `{"val":"`+val+`"}`)
			if err != nil {
				return
			}
			if r.status != 201 {
				unexpected("variable set", r)
				return
			}
			w.vars[key] = val
			w.newVars = append(w.newVars, key)
		case op < 65:
			w.lastVarMaybe = val
			r, err := do("PUT", variablePath(w.lastVarKey()), w.token, `{"val":"`+val+`"}`)
			if err != nil {
				return
			}
			if r.status != 201 {
				unexpected("variable overwrite", r)
				return
			}
			w.lastVar, w.lastVarMaybe = val, ""
		case op < 82:
			key := "x_" + val
			r, err := do("POST", w.ti.xcomPath(key), w.token, `{"seq":`+val+`}`)
			if err != nil {
				return
			}
			if r.status != 201 {
				unexpected("XCom push", r)
				return
			}
			w.xcoms[key] = `{"seq":` + val + `}`
			w.newXComs = append(w.newXComs, key)
		case op < 97:
			w.lastXMaybe = val
			r, err := do("POST", w.ti.xcomPath("return_value"), w.token, val)
			if err != nil {
				return
			}
			if r.status != 201 {
				unexpected("XCom overwrite", r)
				return
			}
			w.lastX, w.lastXMaybe = val, ""
		case running:
			state := [...]string{"success", "failed", "skipped"}[rng.IntN(3)]
			w.finalMaybe = state
			body := mustJSON(t, map[string]any{"state": state, "end_date": sdkTime(time.Now())})
			if state == "success" {
				body = successPayload(t)
			}
			r, err := do("PATCH", tiPath(w.ti.TIID, "state"), w.token, body)
			if err != nil {
				return
			}
			if r.status != 204 {
				unexpected("state "+state, r)
				return
			}
			w.final, w.finalMaybe = state, ""
		default:
			continue
		}
		w.acked++
	}
}

// crashVerify checks, on a restarted server, that every acknowledged write
// is there: the new ones since the last check (all of them when full) and
// a sample of the older ones, the overwritten keys (last acknowledged value
// or the one in flight), each task instance's state and its last heartbeat.
// What it learns about in-flight writes becomes acknowledged.
func crashVerify(t *testing.T, c *http.Client, base, restToken, reader, dagID, runID string, workers []*crashWorker, rng *mrand.Rand, full bool) {
	t.Helper()
	tis := crashTaskInstances(t, c, base, restToken, dagID, runID)
	seeds := make([]uint64, len(workers))
	for i := range seeds {
		seeds[i] = rng.Uint64()
	}
	forEachParallel(len(workers), len(workers), func(i int) {
		w := workers[i]
		rng := mrand.New(mrand.NewPCG(seeds[i], 3))
		get := func(path string) (*plainResult, error) {
			return doPlain(c, "GET", base+path, taskHeaders(reader), nil)
		}
		ti, ok := tis[w.ti.TIID]
		if !ok {
			t.Errorf("worker %d: task instance %s is gone", w.id, w.ti.TIID)
			return
		}
		if !w.started {
			if ti.State != "queued" && ti.State != "running" {
				t.Errorf("worker %d: never acknowledged /run, state %s", w.id, ti.State)
			}
			return
		}
		switch {
		case w.finalMaybe != "" && ti.State == w.finalMaybe:
			w.final, w.finalMaybe = w.finalMaybe, ""
		case w.finalMaybe != "" && ti.State == "running":
			w.finalMaybe = ""
		}
		want := w.final
		if want == "" {
			want = "running"
		}
		if ti.State != want {
			t.Errorf("worker %d: state %s after the kill, want %s (acknowledged)", w.id, ti.State, want)
		}
		// The last acknowledged heartbeat (or /run) is stored: the server
		// stamped it after the worker sent it.
		if ti.LastHeartbeatAt == nil || ti.LastHeartbeatAt.Before(w.lastAlive.Add(-50*time.Millisecond)) {
			t.Errorf("worker %d: last_heartbeat_at %v, before the acknowledged heartbeat sent at %s", w.id, ti.LastHeartbeatAt, w.lastAlive.UTC())
		}
		if want == "running" {
			// And the worker that owns it can go on heartbeating.
			r, err := doPlain(c, "PUT", base+tiPath(w.ti.TIID, "heartbeat"), taskHeaders(w.token), []byte(w.me.heartbeat(t)))
			if err != nil || r.status != 204 {
				t.Errorf("worker %d: heartbeat after restart: %v %v, want 204", w.id, r, err)
			}
		}
		check := func(keys []string, values map[string]string, path func(string) string, decode func([]byte) (string, bool)) {
			for _, k := range keys {
				r, err := get(path(k))
				if err != nil {
					t.Errorf("worker %d: %s: %v", w.id, k, err)
					continue
				}
				got, ok := decode(r.body)
				if r.status != 200 || !ok || got != values[k] {
					t.Errorf("worker %d: acknowledged %s = %s lost after a kill: %s", w.id, k, values[k], r)
				}
			}
		}
		varValue := func(b []byte) (string, bool) {
			var v struct{ Value *string }
			if json.Unmarshal(b, &v) != nil || v.Value == nil {
				return "", false
			}
			return *v.Value, true
		}
		xcomValue := func(b []byte) (string, bool) {
			var v struct{ Value json.RawMessage }
			if json.Unmarshal(b, &v) != nil {
				return "", false
			}
			return string(v.Value), true
		}
		vars, xcoms := w.newVars, w.newXComs
		if full {
			vars, xcoms = crashKeys(w.vars), crashKeys(w.xcoms)
		} else {
			vars = append(vars, crashSample(crashKeys(w.vars), 10, rng)...)
			xcoms = append(xcoms, crashSample(crashKeys(w.xcoms), 10, rng)...)
		}
		check(vars, w.vars, variablePath, varValue)
		check(xcoms, w.xcoms, w.ti.xcomPath, xcomValue)
		w.newVars, w.newXComs = nil, nil
		// Overwritten keys: the last acknowledged value, or the one in flight.
		for _, o := range []struct {
			name        string
			path        string
			last, maybe *string
			decode      func([]byte) (string, bool)
		}{
			{"overwritten variable", variablePath(w.lastVarKey()), &w.lastVar, &w.lastVarMaybe, varValue},
			{"overwritten XCom", w.ti.xcomPath("return_value"), &w.lastX, &w.lastXMaybe, xcomValue},
		} {
			if *o.last == "" && *o.maybe == "" {
				continue
			}
			r, err := get(o.path)
			if err != nil {
				t.Errorf("worker %d: %s: %v", w.id, o.name, err)
				continue
			}
			got, ok := o.decode(r.body)
			switch {
			case r.status == 404 && *o.last == "":
			case r.status == 200 && ok && (got == *o.last || got == *o.maybe):
				*o.last = got
			default:
				t.Errorf("worker %d: %s = %s after a kill, want %q (acknowledged) or %q (in flight)", w.id, o.name, r, *o.last, *o.maybe)
			}
			*o.maybe = ""
		}
	})
}

func crashKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func crashSample(keys []string, n int, rng *mrand.Rand) []string {
	if len(keys) <= n {
		return keys
	}
	out := make([]string, n)
	for i := range out {
		out[i] = keys[rng.IntN(len(keys))]
	}
	return out
}

// crashTI is the admin API's view of a task instance.
type crashTI struct {
	ID              string     `json:"id"`
	State           string     `json:"state"`
	LastHeartbeatAt *time.Time `json:"last_heartbeat_at"`
}

// crashTaskInstances lists the dag run's task instances by id through the
// admin API.
func crashTaskInstances(t *testing.T, c *http.Client, base, restToken, dagID, runID string) map[string]crashTI {
	t.Helper()
	path := "/api/v2/dags/" + url.PathEscape(dagID) + "/dagRuns/" + url.PathEscape(runID) + "/taskInstances"
	r, err := doPlain(c, "GET", base+path, map[string]string{"Authorization": "Bearer " + restToken}, nil)
	if err != nil || r.status != 200 {
		t.Fatalf("GET %s: %v %v", path, r, err)
	}
	var body struct {
		TaskInstances []crashTI `json:"task_instances"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	out := map[string]crashTI{}
	for _, ti := range body.TaskInstances {
		out[ti.ID] = ti
	}
	return out
}

// crashAddUser adds an operator account offline, with the password on stdin.
func crashAddUser(t *testing.T, dataDir, name, role, password string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "--data-dir", dataDir, "users", "add", name, "--role", role, "--password-stdin")
	cmd.Env = baseEnv()
	cmd.Stdin = strings.NewReader(password + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("users add %s: %v\n%s", name, err, out)
	}
	collected.addSecret("operator password", password)
}

// crashLogin logs in through the REST API and returns the access token.
func crashLogin(t *testing.T, base, user, password string) string {
	t.Helper()
	r := send(t, base, "POST", "/auth/token", "", mustJSON(t, map[string]string{"username": user, "password": password}))
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if r.status != http.StatusCreated || json.Unmarshal(r.body, &body) != nil || body.AccessToken == "" {
		t.Fatalf("%s: want 201 with an access_token", r)
	}
	collected.addToken("REST token", body.AccessToken)
	return body.AccessToken
}

// checkBolt opens the database file read-only with bbolt and runs bbolt's
// own consistency check (page references, freelist, ordering).
func checkBolt(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("database does not open after a kill: %v", err)
	}
	defer db.Close()
	var problems []string
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			problems = append(problems, err.Error())
		}
		return nil
	})
	if err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		t.Fatalf("bbolt check after a kill: %d problems, e.g. %s", len(problems), problems[0])
	}
}

// startFailure is a `taskgate serve` that must fail to start.
type startFailure struct {
	code   int
	stderr string
}

// serveMustFail runs `serve` (behind wrapper, e.g. unshare, when given) and
// requires it to exit with a non-zero code within the start timeout; a
// server that starts listening instead fails the test.
func serveMustFail(t *testing.T, dataDir string, wrapper []string, env ...string) startFailure {
	t.Helper()
	args := append(append([]string(nil), wrapper...), binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir)
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = baseEnv(env...)
	logs := newLineBuffer()
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", args, err)
	}
	collected.addLog("failed start ("+t.Name()+")", "", false, logs)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case addr := <-logs.addr:
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("taskgate serve started (listening on %s); want a failure. Output:\n%s", addr, logs)
	case err := <-done:
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			t.Fatalf("taskgate serve: %v, want a non-zero exit; output:\n%s", err, logs)
		}
		return startFailure{code: exitErr.ExitCode(), stderr: logs.String()}
	}
	return startFailure{}
}

// wantClearError requires a short error naming want, not a crash dump.
func wantClearError(t *testing.T, what string, f startFailure, want ...string) {
	t.Helper()
	if f.code <= 0 {
		t.Errorf("%s: exit code %d, want a non-zero exit", what, f.code)
	}
	for _, bad := range []string{"panic:", "goroutine ", "SIGBUS", "SIGSEGV", "fatal error"} {
		if strings.Contains(f.stderr, bad) {
			t.Errorf("%s: crashed instead of refusing (%q):\n%s", what, bad, clipText(f.stderr, 2000))
			return
		}
	}
	for _, w := range want {
		if !strings.Contains(f.stderr, w) {
			t.Errorf("%s: error output does not mention %q:\n%s", what, w, clipText(f.stderr, 2000))
		}
	}
	t.Logf("%s: exit %d: %s", what, f.code, clipText(strings.TrimSpace(f.stderr), 300))
}

// fileDigests hashes every file under dir, to prove a refused start wrote nothing.
func fileDigests(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			out[path] = "dir"
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[path] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func wantSameFiles(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for p, h := range before {
		if after[p] != h {
			t.Errorf("%s: %s changed", what, p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s: %s was created", what, p)
		}
	}
}

// TestCrashUnusableDataDir: a data directory that is a regular file, and a
// database file that is not a bbolt file (garbage, zeros, a valid file cut
// short or with a damaged meta page). The server and the CLI must refuse
// with a clear error and a non-zero exit, and leave the file as it was.
func TestCrashUnusableDataDir(t *testing.T) {
	t.Run("data dir is a file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "data")
		if err := os.WriteFile(path, []byte("not a directory\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		before := fileDigests(t, filepath.Dir(path))
		f := serveMustFail(t, path, nil)
		wantClearError(t, "serve", f, path)
		if r := cli(t, path, "variables", "set", "k", "v"); r.code == 0 {
			t.Errorf("variables set on a file data dir: exit 0")
		} else {
			wantClearError(t, "variables set", startFailure{r.code, r.stderr}, path)
		}
		wantSameFiles(t, "data dir is a file", before, fileDigests(t, filepath.Dir(path)))
	})

	// A valid database to damage.
	good := newDataDir(t)
	queueTask(t, good, "corrupt_dag", "manual__corrupt", "t")
	mustCLI(t, good, "variables", "set", "k", "v")
	valid, err := os.ReadFile(filepath.Join(good, "taskgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	random := make([]byte, 64<<10)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	badMeta := bytes.Clone(valid)
	for i := 16; i < 64; i++ { // both meta pages: magic, version, checksum
		badMeta[i] ^= 0xff
		badMeta[4096+i] ^= 0xff
	}
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"random bytes", random},
		{"text", bytes.Repeat([]byte("this is not a bbolt database\n"), 1000)},
		{"zeros", make([]byte, 32<<10)},
		{"both meta pages damaged", badMeta},
		{"cut to one page", valid[:4096]},
		{"cut to 100 bytes", valid[:100]},
	} {
		t.Run(c.name, func(t *testing.T) {
			dataDir := newDataDir(t)
			if err := os.MkdirAll(dataDir, 0o700); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"jwt_secret", "fernet_key"} {
				if b, err := os.ReadFile(filepath.Join(good, name)); err == nil {
					if err := os.WriteFile(filepath.Join(dataDir, name), b, 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			dbPath := filepath.Join(dataDir, "taskgate.db")
			if err := os.WriteFile(dbPath, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			before := fileDigests(t, dataDir)
			wantClearError(t, "serve", serveMustFail(t, dataDir, nil), dbPath)
			r := cli(t, dataDir, "variables", "get", "k")
			if r.code == 0 {
				t.Errorf("variables get on a damaged database: exit 0, printed %q", r.stdout)
			} else {
				wantClearError(t, "variables get", startFailure{r.code, r.stderr}, dbPath)
			}
			wantSameFiles(t, c.name, before, fileDigests(t, dataDir))
		})
	}
}

// TestCrashReadOnlyDataDir makes the data directory read-only with a
// read-only bind mount in a private mount namespace (tests run as root, so
// permission bits would not stop the server). It is skipped where
// `unshare -m` and `mount` are not permitted.
func TestCrashReadOnlyDataDir(t *testing.T) {
	wrapper := readOnlyWrapper(t)
	for _, c := range []struct {
		name      string
		provision bool
	}{{"existing database", true}, {"empty directory", false}} {
		t.Run(c.name, func(t *testing.T) {
			dataDir := newDataDir(t)
			if c.provision {
				queueTask(t, dataDir, "ro_dag", "manual__ro", "t")
			} else if err := os.MkdirAll(dataDir, 0o700); err != nil {
				t.Fatal(err)
			}
			before := fileDigests(t, dataDir)
			f := serveMustFail(t, dataDir, append(wrapper, dataDir))
			wantClearError(t, "serve on a read-only data dir", f, "read-only file system")
			wantSameFiles(t, c.name, before, fileDigests(t, dataDir))
		})
	}
}

// readOnlyWrapper returns a command prefix that runs the rest of the
// command line with its first argument (the data dir) bind-mounted
// read-only onto itself, or skips the test.
func readOnlyWrapper(t *testing.T) []string {
	t.Helper()
	for _, tool := range []string{"unshare", "mount", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: cannot make a read-only data dir as root", tool)
		}
	}
	probe := t.TempDir()
	out, err := exec.Command("unshare", "-m", "sh", "-c", `mount --bind -o ro "$1" "$1" && ! touch "$1/x" 2>/dev/null`, "sh", probe).CombinedOutput()
	if err != nil {
		t.Skipf("read-only bind mounts are not permitted here (%v: %s)", err, out)
	}
	// sh -c SCRIPT sh DATADIR BINARY ARGS...: mount, then exec the rest.
	return []string{"unshare", "-m", "sh", "-c", `d=$1; shift; mount --bind -o ro "$d" "$d" && exec "$@"`, "sh"}
}

// TestCrashFullDisk fills the database's file system — simulated with a
// file-size limit (RLIMIT_FSIZE, via prlimit) at the database's current
// size, so bbolt cannot grow it — while workers write. Writes that do not
// fit must fail with the opaque 500 (never a 2xx), reads and the health
// check keep working, the server neither crashes nor hangs and stops
// cleanly; restarted without the limit, bbolt's check passes and every
// write acknowledged while full is there.
func TestCrashFullDisk(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit not found: cannot limit the database's size")
	}
	dataDir := newDataDir(t)
	q := queueTask(t, dataDir, "full_dag", "manual__full", "t")
	srv := startServer(t, dataDir, noAuthLimit)
	me := host{"worker-full", "airflow", 31001}
	w := newWorker(t, srv.URL, q.Token)
	mustStatus(t, w.do("PATCH", tiPath(q.TIID, "run"), me.runPayload(t)), 200)
	srv.stop()
	dbPath := filepath.Join(dataDir, "taskgate.db")
	info, err := os.Stat(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	limit := info.Size()

	srv = startWrapped(t, dataDir, []string{prlimit, fmt.Sprintf("--fsize=%d:%d", limit, limit)}, noAuthLimit)
	w.base = srv.URL
	acked := map[string]string{}
	failed := 0
	value := strings.Repeat("f", 2048)
	// send would flag the 500s; these requests are made by hand.
	put := func(path, body string) *plainResult {
		t.Helper()
		hdr := taskHeaders(w.token)
		hdr["Correlation-Id"] = "full-" + path
		r, err := doPlain(httpClient, "PUT", srv.URL+path, hdr, []byte(body))
		if err != nil {
			t.Fatalf("PUT %s: %v", path, err)
		}
		if r.status == 500 {
			var got, want any
			_ = json.Unmarshal(r.body, &got)
			_ = json.Unmarshal([]byte(`{"message":"Internal server error","correlation-id":"full-`+path+`"}`), &want)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("PUT %s: 500 body %s, want Airflow's opaque 500", path, r.body)
			}
		}
		return r
	}
	for i := 0; i < 200 && failed < 5; i++ {
		key := "full_" + strconv.Itoa(i)
		switch r := put(variablePath(key), `{"val":"`+value+`"}`); r.status {
		case 201:
			acked[key] = value
		case 500:
			failed++
		default:
			t.Fatalf("PUT %s: %s, want 201, or 500 once the file cannot grow", key, r)
		}
	}
	if failed == 0 {
		t.Fatalf("the database grew past the %d-byte limit %d times without a failed write", limit, len(acked))
	}
	// Full, it still reads, answers health checks and heartbeats fail or
	// succeed honestly.
	mustStatus(t, send(t, srv.URL, "GET", "/execution/health", "", ""), 200)
	wantJSON(t, send(t, srv.URL, "GET", variablePath("full_missing"), "Bearer "+w.token, ""), 404,
		`{"detail":{"reason":"not_found","message":"Variable with key 'full_missing' not found"}}`)
	if r := put(tiPath(q.TIID, "heartbeat"), me.heartbeat(t)); r.status != 204 && r.status != 500 {
		t.Errorf("heartbeat while full: %s, want 204 or 500", r)
	}
	srv.mustBeAlive(t)
	srv.stop()
	checkBolt(t, dbPath)

	srv = startServer(t, dataDir, noAuthLimit)
	w.base = srv.URL
	for key, v := range acked {
		wantJSON(t, w.do("GET", variablePath(key), ""), 200, mustJSON(t, map[string]string{"key": key, "value": v}))
	}
	wantJSON(t, w.do("PUT", variablePath("after_full"), `{"val":"x"}`), 201, `{"message":"Variable successfully set"}`)
	wantNoContent(t, w.do("PUT", tiPath(q.TIID, "heartbeat"), me.heartbeat(t)), 204)
	t.Logf("database limited to %d bytes: %d writes acknowledged, then %d refused with 500; all acknowledged ones kept", limit, len(acked), failed)
	srv.stop()
}

// startWrapped is startServer with the command behind wrapper.
func startWrapped(t *testing.T, dataDir string, wrapper []string, env ...string) *server {
	t.Helper()
	return startServerCmd(t, dataDir, wrapper, "127.0.0.1:0", env...)
}
