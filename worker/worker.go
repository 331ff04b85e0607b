// Package worker supervises one task instance the way Airflow's Task SDK
// supervisor does: it moves the task instance to running
// with the workload token, runs the task's command with the execution token
// kept out of the command's reach, heartbeats while the command runs, stops
// the command when the server says the task must stop (or heartbeats keep
// failing, or the worker is told to stop), and reports how the task ended.
//
// The command only learns who it is (AIRFLOW_CTX_* and TASKGATE_TI_ID in its
// environment), never a token: the supervisor alone talks to the API, so a
// task's code cannot call the API with the task's authority. The command's
// last stdout line, when it is JSON, becomes the task's return_value XCom.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/taskgate/taskgate/client"
	"github.com/taskgate/taskgate/workload"
)

// API is the part of the Execution API the supervisor calls;
// *client.Client implements it.
type API interface {
	Run(ctx context.Context, tiID string, r client.RunRequest) (*client.RunContext, error)
	Heartbeat(ctx context.Context, tiID, hostname string, pid int) error
	UpdateState(ctx context.Context, tiID string, u client.StateUpdate) error
	SetXCom(ctx context.Context, ref client.XComRef, value json.RawMessage) error
	DeleteXCom(ctx context.Context, ref client.XComRef) error
}

// Ticker is the heartbeat clock. Tests inject one they tick by hand, so
// they never wait for a real interval.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

type stdTicker struct{ t *time.Ticker }

func (s stdTicker) C() <-chan time.Time { return s.t.C }
func (s stdTicker) Stop()               { s.t.Stop() }

// NewTicker is the real Ticker, the default of Config.NewTicker.
func NewTicker(d time.Duration) Ticker { return stdTicker{time.NewTicker(d)} }

// ReturnValueKey is the XCom key of a task's return value.
const ReturnValueKey = "return_value"

// maxLine bounds one logged output line; a longer line is logged in pieces
// and is never taken as the return value.
const maxLine = 1 << 20

// signalReportTimeout bounds the final "failed" report after the worker was
// told to stop: a shutting-down machine does not wait out a full retry window.
const signalReportTimeout = 30 * time.Second

// Config is one supervised task.
type Config struct {
	// API is the Execution API client, holding the workload token. Required.
	API API
	// Task is the ExecuteTask workload. Required.
	Task workload.ExecuteTask
	// Command is the task's program and arguments. Required.
	Command []string
	// Env is the environment the command starts from (the worker's own);
	// the task's identity variables are added and override same-named
	// entries, and any entry holding the workload token is dropped. Nil
	// gives the command the identity variables only.
	Env []string
	// Hostname, Unixname and PID identify this worker to the server, which
	// accepts heartbeats only from the (hostname, pid) that started the task.
	Hostname string
	Unixname string
	PID      int
	// HeartbeatInterval is [workers] min_heartbeat_interval. Default 5 s.
	HeartbeatInterval time.Duration
	// MaxFailedHeartbeats is [workers] max_failed_heartbeats: consecutive
	// failed heartbeats (other than 404/409/410) before the task is stopped.
	// Default 3.
	MaxFailedHeartbeats int
	// KillGrace is how long a stopped command has between SIGTERM and
	// SIGKILL; it also bounds how long output is read from processes a
	// command left behind. Default 10 s.
	KillGrace time.Duration
	// Signals, when set, delivers signals for the command (SIGTERM, SIGINT
	// the worker received): each is forwarded to the command's process
	// group, and the first stops the task. Cancelling the context of Run
	// stops the task too, with the signal that arrives on Signals at the
	// same time (one forward, not two), else SIGTERM.
	Signals <-chan os.Signal
	// Now is the clock for start and end dates. Default time.Now.
	Now func() time.Time
	// NewTicker makes the heartbeat ticker. Default NewTicker.
	NewTicker func(d time.Duration) Ticker
	// Logger receives the worker's log and the command's output, one entry
	// per line. Default: no logging.
	Logger *zap.Logger
}

// StopReason says why the supervisor stopped the command.
type StopReason string

// Why a command was stopped.
const (
	// StopServer: a heartbeat got 404, 409 or 410 — the task instance is
	// gone, finished, or runs elsewhere. No state is reported.
	StopServer StopReason = "server"
	// StopHeartbeats: MaxFailedHeartbeats consecutive heartbeats failed.
	StopHeartbeats StopReason = "heartbeat_failures"
	// StopSignal: the worker was told to stop (signal or cancelled context).
	StopSignal StopReason = "signal"
)

// Result is how a supervised task ended.
type Result struct {
	// ExitCode is what the worker process should exit with: the command's
	// exit code (128+n when a signal n ended it), 1 when it was stopped by
	// the server or failed heartbeats, 128+n when the worker was stopped by
	// signal n, and 1 when the task could not be started or reported.
	ExitCode int
	// State is the state reported to the server, "" when none was.
	State client.State
	// Stopped is why the supervisor stopped the command, "" when it
	// exited on its own.
	Stopped StopReason
	// Signal is the signal that ended the command, 0 when it exited.
	Signal syscall.Signal
	// ReturnValue is the JSON pushed as the return_value XCom, if any.
	ReturnValue json.RawMessage
}

// Supervisor runs one task.
type Supervisor struct {
	cfg Config
	log *zap.Logger
}

// New checks cfg and fills in its defaults.
func New(cfg Config) (*Supervisor, error) {
	switch {
	case cfg.API == nil:
		return nil, errors.New("worker: no API client")
	case len(cfg.Command) == 0 || cfg.Command[0] == "":
		return nil, errors.New("worker: no command")
	case cfg.HeartbeatInterval < 0 || cfg.MaxFailedHeartbeats < 0 || cfg.KillGrace < 0:
		return nil, errors.New("worker: negative heartbeat interval, failed-heartbeat limit or kill grace")
	}
	if err := checkTask(cfg.Task); err != nil {
		return nil, err
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = DefaultSettings().HeartbeatInterval
	}
	if cfg.MaxFailedHeartbeats == 0 {
		cfg.MaxFailedHeartbeats = DefaultSettings().MaxFailedHeartbeats
	}
	if cfg.KillGrace == 0 {
		cfg.KillGrace = DefaultSettings().KillGrace
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewTicker == nil {
		cfg.NewTicker = NewTicker
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	ti := cfg.Task.TI
	log = log.With(zap.String("ti_id", ti.ID), zap.String("dag_id", ti.DagID), zap.String("run_id", ti.RunID),
		zap.String("task_id", ti.TaskID), zap.Int("map_index", ti.MapIndex), zap.Int("try_number", ti.TryNumber))
	return &Supervisor{cfg: cfg, log: log}, nil
}

// Run supervises the task to its end. The error reports what went wrong
// with the task instance itself (it could not be started, its return value
// or final state could not be stored); a command that failed is not an
// error, its exit code is in the Result.
func (s *Supervisor) Run(ctx context.Context) (Result, error) {
	ti := s.cfg.Task.TI
	rc, err := s.cfg.API.Run(ctx, ti.ID, client.RunRequest{
		Hostname: s.cfg.Hostname, Unixname: s.cfg.Unixname, PID: s.cfg.PID, StartDate: s.cfg.Now(),
	})
	if err != nil {
		return Result{ExitCode: 1}, fmt.Errorf("worker: start task instance %s: %w", ti.ID, err)
	}
	// Airflow's rule, should the server not say: retries left.
	retry := rc.ShouldRetry || (rc.MaxTries != 0 && ti.TryNumber <= rc.MaxTries)
	s.log.Info("task instance running", zap.Int("max_tries", rc.MaxTries), zap.Bool("should_retry", retry))
	s.clearXComs(ctx, rc.XComKeysToClear)

	stdout := newLineLogger(s.log, "stdout", maxLine)
	stderr := newLineLogger(s.log, "stderr", maxLine)
	cmd := exec.Command(s.cfg.Command[0], s.cfg.Command[1:]...)
	cmd.Env = s.childEnv()
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = s.cfg.KillGrace
	configureCommand(cmd)
	if err := cmd.Start(); err != nil {
		s.log.Error("task command did not start", zap.Error(err))
		res := Result{ExitCode: 1}
		var rerr error
		res.State, rerr = s.reportFailure(ctx, retry)
		return res, errors.Join(fmt.Errorf("worker: start command: %w", err), rerr)
	}
	s.log.Info("task command started", zap.String("command", filepath.Base(s.cfg.Command[0])), zap.Int("pid", cmd.Process.Pid))

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	hbCtx, stopHeartbeats := context.WithCancel(ctx)
	stopReq := make(chan StopReason, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.heartbeat(hbCtx, stopReq)
	}()
	waitErr, stopped, stopSig := s.supervise(ctx, cmd, exited, stopReq)
	stopHeartbeats()
	wg.Wait()
	stdout.Flush()
	stderr.Flush()

	code, sig := exitStatus(waitErr)
	if errors.Is(waitErr, exec.ErrWaitDelay) {
		s.log.Warn("task command exited but processes it started still hold its output open", zap.Duration("waited", s.cfg.KillGrace))
	}
	s.log.Info("task command exited", zap.Int("exit_code", code), zap.String("signal", signalName(sig)))
	res := Result{Stopped: stopped, Signal: sig}
	var reportErr error

	switch stopped {
	case StopServer:
		// The server already decided; like Airflow's SERVER_TERMINATED,
		// nothing is reported.
		res.ExitCode = 1
		return res, nil
	case StopHeartbeats:
		res.ExitCode = 1
		res.State, reportErr = s.report(ctx, client.StateFailed)
		return res, reportErr
	case StopSignal:
		// ctx may be what was cancelled; the report still goes out, bounded.
		res.ExitCode = 128 + int(stopSig)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), signalReportTimeout)
		defer cancel()
		res.State, reportErr = s.report(rctx, client.StateFailed)
		return res, reportErr
	}

	res.ExitCode = code
	var xcomErr error
	if code == 0 {
		if v := returnValue(stdout.LastLine()); v != nil {
			ref := client.XComRef{DagID: ti.DagID, RunID: ti.RunID, TaskID: ti.TaskID, Key: ReturnValueKey, MapIndex: ti.MapIndex}
			if err := s.cfg.API.SetXCom(ctx, ref, v); err != nil {
				// A return value that cannot be stored fails the task, as in
				// Airflow: downstream tasks would read nothing.
				s.log.Error("return value not stored", zap.Error(err))
				xcomErr = fmt.Errorf("worker: push return value of task instance %s: %w", ti.ID, err)
				res.ExitCode = 1
			} else {
				res.ReturnValue = v
				s.log.Info("return value stored", zap.Int("bytes", len(v)))
			}
		}
	}
	if res.ExitCode == 0 {
		res.State, reportErr = s.report(ctx, client.StateSuccess)
	} else {
		res.State, reportErr = s.reportFailure(ctx, retry)
	}
	if reportErr != nil && res.ExitCode == 0 {
		res.ExitCode = 1
	}
	return res, errors.Join(xcomErr, reportErr)
}

// supervise waits for the command to exit, stopping it on request: SIGTERM
// to its process group, SIGKILL after the grace period.
func (s *Supervisor) supervise(ctx context.Context, cmd *exec.Cmd, exited <-chan error,
	stopReq <-chan StopReason) (waitErr error, stopped StopReason, stopSig syscall.Signal) {
	var (
		killTimer *time.Timer
		kill      <-chan time.Time
	)
	stop := func(reason StopReason, sig syscall.Signal) {
		if stopped == "" {
			stopped, stopSig = reason, sig
		}
		s.log.Warn("stopping task command", zap.String("reason", string(reason)), zap.String("signal", signalName(sig)))
		if err := signalGroup(cmd.Process, sig); err != nil {
			s.log.Warn("signal task command", zap.Error(err))
		}
		if killTimer == nil {
			killTimer = time.NewTimer(s.cfg.KillGrace)
			kill = killTimer.C
		}
	}
	defer func() {
		if killTimer != nil {
			killTimer.Stop()
		}
		if stopped != "" {
			// Whatever of the stopped task's process group survived its
			// leader goes too.
			_ = signalGroup(cmd.Process, syscall.SIGKILL)
		}
	}()
	done := ctx.Done()
	for {
		select {
		case waitErr = <-exited:
			return waitErr, stopped, stopSig
		case reason := <-stopReq:
			stop(reason, syscall.SIGTERM)
		case <-done:
			done = nil
			if stopped != "" {
				continue // already stopping; do not signal twice
			}
			stop(StopSignal, s.cancelSignal())
		case sig := <-s.cfg.Signals:
			if ss, ok := sig.(syscall.Signal); ok {
				stop(StopSignal, ss)
			}
		case <-kill:
			kill = nil
			s.log.Warn("task command still running after the grace period; killing it", zap.Duration("grace", s.cfg.KillGrace))
			if err := signalGroup(cmd.Process, syscall.SIGKILL); err != nil {
				s.log.Warn("kill task command", zap.Error(err))
			}
		}
	}
}

// signalWindow is how long a cancelled Run waits for the signal behind the
// cancellation to arrive on Config.Signals too.
const signalWindow = 100 * time.Millisecond

// cancelSignal is the signal to stop the command with when Run's context
// was cancelled. A worker's signal handler usually cancels the context and
// delivers the signal on Signals at the same moment; forwarding both would
// hit the command twice (a second SIGTERM can cut its cleanup short), so the
// delivered signal is taken instead when it arrives within signalWindow.
// Otherwise — a plain cancellation — it is SIGTERM.
func (s *Supervisor) cancelSignal() syscall.Signal {
	if s.cfg.Signals == nil {
		return syscall.SIGTERM
	}
	t := time.NewTimer(signalWindow)
	defer t.Stop()
	select {
	case sig := <-s.cfg.Signals:
		if ss, ok := sig.(syscall.Signal); ok {
			return ss
		}
	case <-t.C:
	}
	return syscall.SIGTERM
}

// heartbeat beats every interval until ctx ends, and asks for the command
// to be stopped when the server refuses the task (404, 409, 410) or
// MaxFailedHeartbeats consecutive heartbeats failed otherwise.
func (s *Supervisor) heartbeat(ctx context.Context, stopReq chan<- StopReason) {
	t := s.cfg.NewTicker(s.cfg.HeartbeatInterval)
	defer t.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		err := s.cfg.API.Heartbeat(ctx, s.cfg.Task.TI.ID, s.cfg.Hostname, s.cfg.PID)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil:
			if failures > 0 {
				s.log.Info("heartbeat succeeded again", zap.Int("failed_before", failures))
			}
			failures = 0
		case errors.Is(err, client.ErrNotFound), errors.Is(err, client.ErrConflict), errors.Is(err, client.ErrGone):
			s.log.Error("server says the task must stop", zap.Error(err))
			stopReq <- StopServer
			return
		default:
			failures++
			s.log.Warn("heartbeat failed", zap.Int("consecutive_failures", failures),
				zap.Int("max_failed_heartbeats", s.cfg.MaxFailedHeartbeats), zap.Error(err))
			if failures >= s.cfg.MaxFailedHeartbeats {
				s.log.Error("too many failed heartbeats; stopping the task")
				stopReq <- StopHeartbeats
				return
			}
		}
	}
}

// clearXComs deletes the XComs of an earlier try before the command runs,
// as Airflow's task runner does with xcom_keys_to_clear, so a retry that
// returns nothing does not leave the previous try's value behind.
func (s *Supervisor) clearXComs(ctx context.Context, keys []string) {
	ti := s.cfg.Task.TI
	for _, k := range keys {
		ref := client.XComRef{DagID: ti.DagID, RunID: ti.RunID, TaskID: ti.TaskID, Key: k, MapIndex: ti.MapIndex}
		if err := s.cfg.API.DeleteXCom(ctx, ref); err != nil {
			s.log.Warn("xcom of an earlier try not cleared", zap.String("key", k), zap.Error(err))
		}
	}
}

// reportFailure reports up_for_retry when the task has tries left, failed
// otherwise.
func (s *Supervisor) reportFailure(ctx context.Context, retry bool) (client.State, error) {
	if retry {
		return s.report(ctx, client.StateUpForRetry)
	}
	return s.report(ctx, client.StateFailed)
}

// report sends the final state and returns it, or "" and the error.
func (s *Supervisor) report(ctx context.Context, state client.State) (client.State, error) {
	err := s.cfg.API.UpdateState(ctx, s.cfg.Task.TI.ID, client.StateUpdate{State: state, EndDate: s.cfg.Now()})
	if err != nil {
		s.log.Error("state not reported", zap.String("state", string(state)), zap.Error(err))
		return "", fmt.Errorf("worker: report %s for task instance %s: %w", state, s.cfg.Task.TI.ID, err)
	}
	s.log.Info("state reported", zap.String("state", string(state)))
	return state, nil
}

// Identity variables the command receives.
const (
	EnvDagID     = "AIRFLOW_CTX_DAG_ID"
	EnvRunID     = "AIRFLOW_CTX_DAG_RUN_ID"
	EnvTaskID    = "AIRFLOW_CTX_TASK_ID"
	EnvMapIndex  = "AIRFLOW_CTX_MAP_INDEX"
	EnvTryNumber = "AIRFLOW_CTX_TRY_NUMBER"
	EnvTIID      = "TASKGATE_TI_ID"
)

// childEnv is Env without the identity variables and anything holding the
// workload token, followed by the identity variables.
func (s *Supervisor) childEnv() []string {
	ti := s.cfg.Task.TI
	identity := []string{
		EnvDagID + "=" + ti.DagID,
		EnvRunID + "=" + ti.RunID,
		EnvTaskID + "=" + ti.TaskID,
		EnvMapIndex + "=" + strconv.Itoa(ti.MapIndex),
		EnvTryNumber + "=" + strconv.Itoa(ti.TryNumber),
		EnvTIID + "=" + ti.ID,
	}
	names := map[string]bool{}
	for _, kv := range identity {
		name, _, _ := strings.Cut(kv, "=")
		names[name] = true
	}
	env := make([]string, 0, len(s.cfg.Env)+len(identity))
	for _, kv := range s.cfg.Env {
		name, value, _ := strings.Cut(kv, "=")
		if names[name] || (s.cfg.Task.Token != "" && strings.Contains(value, s.cfg.Task.Token)) {
			continue
		}
		env = append(env, kv)
	}
	return append(env, identity...)
}

// returnValue is the command's last stdout line when it is a JSON
// document, else nil.
func returnValue(line []byte) json.RawMessage {
	v := []byte(strings.TrimSpace(string(line)))
	if len(v) == 0 || !json.Valid(v) {
		return nil
	}
	return v
}

func signalName(sig syscall.Signal) string {
	if sig == 0 {
		return ""
	}
	return sig.String()
}
