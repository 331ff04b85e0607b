package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/taskgate/taskgate/bench"
	"github.com/taskgate/taskgate/config"
	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/store"
	"github.com/taskgate/taskgate/tokens"
	"github.com/taskgate/taskgate/workload"
)

// Names of the provisioned data.
const (
	dagID        = "bench"
	connectionID = "bench_conn"
	tasksPerRun  = 100
	upstreamTask = "upstream" // every dag run has an XCom of this task to pull
	xcomKey      = "return_value"
)

// estimatedMaxRate bounds the closed-loop mix throughput when sizing the
// spare task instances that "finish" calls start; running out only turns
// the remaining finishes into heartbeats (and is reported).
const estimatedMaxRate = 30000

// tiInfo is one provisioned task instance with its requests pre-encoded.
type tiInfo struct {
	id, runID, taskID string
	hostname          string
	pid               int
	workload          string // workload token, signed per algorithm
	runPath, hbPath   string
	statePath         string
	pushPath          string
	pullPath          string
	runBody, hbBody   []byte
	// baselineHBPath is hbPath under the baseline server's prefix: the
	// same request size, answered by a bare handler.
	baselineHBPath string
}

// dataset is what provision wrote into the data directory.
type dataset struct {
	dataDir string
	// tis are the task instances the phases use: for algorithm i,
	// tis[i*perAlg]: the client smoke test, then tasks active ones, then
	// the spares.
	tis     []*tiInfo
	perAlg  int
	spares  int
	stored  int
	took    time.Duration
	dbBytes int64
}

// algRange returns the smoke-test task instance, the active ones and the
// spares of algorithm number i.
func (d *dataset) algRange(i, tasks int) (smoke *tiInfo, active, spares []*tiInfo) {
	r := d.tis[i*d.perAlg : (i+1)*d.perAlg]
	return r[0], r[1 : 1+tasks], r[1+tasks:]
}

// spareCount sizes the spare task instances of one algorithm: enough for
// every "finish" of the mix phases at up to estimatedMaxRate (closed loop)
// plus the paced rate, in every run.
func (o *options) spareCount() int {
	total, finish := 0, 0
	for _, w := range o.mix {
		total += w.Weight
		if w.Name == "finish" {
			finish = w.Weight
		}
	}
	if finish == 0 {
		return 0
	}
	frac := float64(finish) / float64(total)
	secs := (o.warmup + o.duration).Seconds()
	rate := 0.0
	if o.want("mix") {
		rate += estimatedMaxRate
	}
	if o.want("mix-paced") {
		rate += o.pacedRate()
	}
	return int(math.Ceil(frac*rate*secs*float64(o.runs))) + 100
}

// pacedRate is the request rate of the mix-paced phase: tasks workers
// heartbeating every hbInterval, and the other calls of the mix in
// proportion.
func (o *options) pacedRate() float64 {
	total, hb := 0, 0
	for _, w := range o.mix {
		total += w.Weight
		if w.Name == "heartbeat" {
			hb = w.Weight
		}
	}
	perTask := 1 / o.hbInterval.Seconds()
	if hb == 0 {
		return float64(o.tasks) * perTask
	}
	return float64(o.tasks) * perTask * float64(total) / float64(hb)
}

// loadConfig is taskgate's configuration for the data directory and the
// given extra environment, as the server will see it.
func (b *benchmark) loadConfig(extraEnv []string) (*config.Config, error) {
	env := append(append([]string{}, b.environ...), extraEnv...)
	return config.Load(config.Sources{Env: env, Flags: map[string]string{"taskgate.data_dir": b.data.dataDir}})
}

// provision writes the variable, the connection, opts.stored task instances
// in dag runs of tasksPerRun, and one upstream XCom per dag run, directly
// with the store package while no server runs: the CLI's `workloads queue`
// costs a process start per task instance.
func (b *benchmark) provision(ctx context.Context) error {
	o := b.opts
	d := &dataset{dataDir: filepath.Join(b.tmp, "data"), spares: o.spareCount()}
	b.data = d
	d.perAlg = 1 + o.tasks + d.spares
	need := d.perAlg * len(o.algs)
	d.stored = max(o.stored, need)
	if d.stored > o.stored {
		b.logf("storing %d task instances instead of %d: the phases use that many", d.stored, o.stored)
	}
	cfg, err := b.loadConfig(nil)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(d.dataDir, 0o700); err != nil {
		return err
	}
	// The secret the HS512 server will reuse.
	if _, _, err := tokens.LoadOrCreateSecret(filepath.Join(d.dataDir, "jwt_secret")); err != nil {
		return err
	}
	start := time.Now()
	db, err := store.Open(filepath.Join(d.dataDir, "taskgate.db"), store.Options{BatchDelay: cfg.BatchDelay})
	if err != nil {
		return err
	}
	defer db.Close()
	value := bench.VariableValue
	if err := db.PutVariable(ctx, workload.Variable{Key: bench.VariableKey, Value: &value}); err != nil {
		return err
	}
	str := func(s string) *string { return &s }
	port := 5432
	conn := workload.Connection{
		ConnID: connectionID, ConnType: "postgres", Host: str("warehouse.db.internal"), Schema: str("analytics"),
		Login: str("etl"), Password: str("not-a-real-password"), Port: &port,
		Extra: str(`{"sslmode": "require", "connect_timeout": 10}`),
	}
	if err := db.PutConnection(ctx, conn); err != nil {
		return err
	}

	d.tis = make([]*tiInfo, need)
	now := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Bool // the first error stops every inserter
	errs := make(chan error, 1)
	// Many concurrent inserts share each fsync (group commit).
	for range 128 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= d.stored || ctx.Err() != nil || failed.Load() {
					return
				}
				id, err := uuid.NewV7()
				if err != nil {
					id = uuid.New()
				}
				ti := &tiInfo{id: id.String(), runID: fmt.Sprintf("bench_run_%05d", i/tasksPerRun),
					taskID: fmt.Sprintf("task_%03d", i%tasksPerRun)}
				_, err = workload.Queue(ctx, db, ti.id, workload.QueueRequest{
					DagID: dagID, RunID: ti.runID, TaskID: ti.taskID, MapIndex: -1, MaxTries: 2,
					DagRelPath: "bench_dag.py", RunType: "scheduled",
				}, now)
				if err != nil {
					failed.Store(true)
					select {
					case errs <- fmt.Errorf("queue task instance %d: %w", i, err):
					default:
					}
					return
				}
				if i < need {
					ti.encode(i)
					d.tis[i] = ti
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	// One upstream XCom per dag run, for the mix's pulls.
	runs := (d.stored + tasksPerRun - 1) / tasksPerRun
	next.Store(0)
	for range 128 {
		wg.Go(func() {
			for {
				r := int(next.Add(1) - 1)
				if r >= runs || ctx.Err() != nil || failed.Load() {
					return
				}
				err := db.SetXCom(ctx, workload.XCom{
					XComRef: workload.XComRef{DagID: dagID, RunID: fmt.Sprintf("bench_run_%05d", r), TaskID: upstreamTask,
						MapIndex: -1, Key: xcomKey},
					Value: json.RawMessage(`{"rows": 1250, "uri": "s3://bench-bucket/extract/part-0000.parquet"}`),
				})
				if err != nil {
					failed.Store(true)
					select {
					case errs <- fmt.Errorf("set upstream xcom of run %d: %w", r, err):
					default:
					}
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	d.took = time.Since(start)
	if fi, err := os.Stat(filepath.Join(d.dataDir, "taskgate.db")); err == nil {
		d.dbBytes = fi.Size()
	}
	b.logf("provisioned %d task instances in %d dag runs (%d used by the phases, %d spares per algorithm) in %s; database %.1f MB",
		d.stored, runs, need, d.spares, d.took.Round(time.Millisecond), float64(d.dbBytes)/1e6)
	return nil
}

// encode pre-encodes the paths and bodies of task instance number i; each
// one runs as its own worker (hostname, pid).
func (ti *tiInfo) encode(i int) {
	ti.hostname = fmt.Sprintf("bench-worker-%06d", i)
	ti.pid = 10000 + i
	base := "/execution/task-instances/" + ti.id
	ti.runPath, ti.hbPath, ti.statePath = base+"/run", base+"/heartbeat", base+"/state"
	ti.baselineHBPath = "/baseline/task-instances/" + ti.id + "/heartbeat"
	ti.pushPath = "/execution/xcoms/" + dagID + "/" + ti.runID + "/" + ti.taskID + "/" + xcomKey + "?map_index=-1"
	ti.pullPath = "/execution/xcoms/" + dagID + "/" + ti.runID + "/" + upstreamTask + "/" + xcomKey + "?map_index=-1"
	ti.hbBody = fmt.Appendf(nil, `{"hostname":%q,"pid":%d}`, ti.hostname, ti.pid)
}

// keyEnv writes the key material of alg into the temporary directory and
// returns the environment that makes the gateway sign and verify with it.
// HS512 uses the data directory's generated secret.
func (b *benchmark) keyEnv(alg string) ([]string, error) {
	var key any
	switch alg {
	case "HS512":
		return nil, nil
	case "EdDSA":
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		key = priv
	case "RS256", "RS512":
		priv, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		key = priv
	default:
		return nil, fmt.Errorf("unsupported algorithm %s", alg)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(b.tmp, "jwt-"+alg+".pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	return []string{"AIRFLOW__API_AUTH__JWT_PRIVATE_KEY_PATH=" + path, "AIRFLOW__API_AUTH__JWT_ALGORITHM=" + alg}, nil
}

// signWorkloads signs a workload token for every task instance in tis with
// the keys the gateway will run with (taskgate's keyConfig, repeated here),
// and encodes their /run bodies.
func (b *benchmark) signWorkloads(extraEnv []string, tis []*tiInfo) error {
	cfg, err := b.loadConfig(extraEnv)
	if err != nil {
		return err
	}
	tc := tokens.Config{
		PrivateKeyPath: cfg.JWTPrivateKeyPath, Algorithm: cfg.JWTAlgorithm, KID: cfg.JWTKID,
		Issuers: cfg.JWTIssuers, Audiences: cfg.ExecutionAudiences, Leeway: cfg.JWTLeeway,
	}
	switch {
	case cfg.JWTSecret != "":
		tc.Secret = []byte(cfg.JWTSecret)
	case cfg.JWTPrivateKeyPath == "":
		if tc.Secret, _, err = tokens.LoadOrCreateSecret(filepath.Join(cfg.DataDir, "jwt_secret")); err != nil {
			return err
		}
	}
	signer, err := tokens.NewSigner(tc)
	if err != nil {
		return err
	}
	start := time.Now().UTC().Format(time.RFC3339Nano)
	for _, ti := range tis {
		tok, _, err := signer.Sign(scopes.WorkloadClaims(ti.id), cfg.WorkloadTokenLifetime)
		if err != nil {
			return err
		}
		ti.workload = tok
		ti.runBody = fmt.Appendf(nil, `{"state":"running","hostname":%q,"unixname":"airflow","pid":%d,"start_date":%q}`,
			ti.hostname, ti.pid, start)
	}
	return nil
}
