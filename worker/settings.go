package worker

import (
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/taskgate/taskgate/client"
)

// Settings are the [workers] options of Airflow that a worker honours, plus
// the kill grace period. Their defaults are Airflow's, so a worker behaves
// like a Task SDK supervisor out of the box.
type Settings struct {
	// HeartbeatInterval is [workers] min_heartbeat_interval.
	HeartbeatInterval time.Duration
	// MaxFailedHeartbeats is [workers] max_failed_heartbeats.
	MaxFailedHeartbeats int
	// Retries is [workers] execution_api_retries: attempts per API call.
	Retries int
	// RetryWaitMin and RetryWaitMax are [workers]
	// execution_api_retry_wait_min and _max.
	RetryWaitMin time.Duration
	RetryWaitMax time.Duration
	// Timeout is [workers] execution_api_timeout, per HTTP request.
	Timeout time.Duration
	// KillGrace is the time between SIGTERM and SIGKILL when a task is
	// stopped (taskgate's own; not an Airflow key).
	KillGrace time.Duration
}

// DefaultSettings returns Airflow's defaults and a 10 s kill grace.
func DefaultSettings() Settings {
	return Settings{
		HeartbeatInterval:   5 * time.Second,
		MaxFailedHeartbeats: 3,
		Retries:             client.DefaultRetries,
		RetryWaitMin:        client.DefaultRetryWaitMin,
		RetryWaitMax:        client.DefaultRetryWaitMax,
		Timeout:             client.DefaultTimeout,
		KillGrace:           10 * time.Second,
	}
}

// The environment variables read by ApplyEnv: Airflow's names for the
// [workers] keys.
const (
	EnvHeartbeatInterval   = "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"
	EnvMaxFailedHeartbeats = "AIRFLOW__WORKERS__MAX_FAILED_HEARTBEATS"
	EnvRetries             = "AIRFLOW__WORKERS__EXECUTION_API_RETRIES"
	EnvRetryWaitMin        = "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MIN"
	EnvRetryWaitMax        = "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MAX"
	EnvTimeout             = "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT"
)

// ApplyEnv overrides s with the AIRFLOW__WORKERS__… variables present in
// environ (KEY=VALUE entries; the last of duplicates wins). Durations are
// seconds as Airflow writes them ("5", "5.0", "0.5") or Go durations
// ("500ms"). An error names the variable.
func (s *Settings) ApplyEnv(environ []string) error {
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		var err error
		switch name {
		case EnvHeartbeatInterval:
			s.HeartbeatInterval, err = ParseDuration(value)
		case EnvMaxFailedHeartbeats:
			s.MaxFailedHeartbeats, err = parseCount(value)
		case EnvRetries:
			s.Retries, err = parseCount(value)
		case EnvRetryWaitMin:
			s.RetryWaitMin, err = ParseDuration(value)
		case EnvRetryWaitMax:
			s.RetryWaitMax, err = ParseDuration(value)
		case EnvTimeout:
			s.Timeout, err = ParseDuration(value)
		default:
			continue
		}
		if err != nil {
			return fmt.Errorf("worker: %s=%q: %w", name, value, err)
		}
	}
	return nil
}

// RegisterFlags defines one flag per setting on fs, defaulting to the
// current values: apply the environment first, and flags given on the
// command line override it.
func (s *Settings) RegisterFlags(fs *flag.FlagSet) {
	fs.Var((*durationFlag)(&s.HeartbeatInterval), "heartbeat-interval",
		"time between heartbeats ([workers] min_heartbeat_interval; seconds or a Go duration)")
	fs.Var((*countFlag)(&s.MaxFailedHeartbeats), "max-failed-heartbeats",
		"consecutive failed heartbeats before the task is stopped ([workers] max_failed_heartbeats)")
	fs.Var((*countFlag)(&s.Retries), "retries", "attempts per API call ([workers] execution_api_retries)")
	fs.Var((*durationFlag)(&s.RetryWaitMin), "retry-wait-min", "shortest wait between attempts ([workers] execution_api_retry_wait_min)")
	fs.Var((*durationFlag)(&s.RetryWaitMax), "retry-wait-max", "longest wait between attempts ([workers] execution_api_retry_wait_max)")
	fs.Var((*durationFlag)(&s.Timeout), "timeout", "per-request timeout ([workers] execution_api_timeout)")
	fs.Var((*durationFlag)(&s.KillGrace), "kill-grace", "time between SIGTERM and SIGKILL when the task is stopped")
}

// Validate refuses settings a worker cannot run with.
func (s Settings) Validate() error {
	switch {
	case s.HeartbeatInterval <= 0:
		return fmt.Errorf("worker: heartbeat interval %s: want more than 0", s.HeartbeatInterval)
	case s.MaxFailedHeartbeats < 1:
		return fmt.Errorf("worker: max failed heartbeats %d: want 1 or more", s.MaxFailedHeartbeats)
	case s.Retries < 0:
		return fmt.Errorf("worker: retries %d: want 0 or more", s.Retries)
	case s.RetryWaitMax < s.RetryWaitMin:
		return fmt.Errorf("worker: retry wait max %s is below min %s", s.RetryWaitMax, s.RetryWaitMin)
	case s.KillGrace <= 0:
		return fmt.Errorf("worker: kill grace %s: want more than 0", s.KillGrace)
	}
	return nil
}

// ClientOptions are the client options for these settings.
func (s Settings) ClientOptions() []client.Option {
	return []client.Option{
		client.WithRetries(s.Retries),
		client.WithRetryWait(s.RetryWaitMin, s.RetryWaitMax),
		client.WithTimeout(s.Timeout),
	}
}

// ParseDuration reads a duration as Airflow's configuration writes it, a
// number of seconds ("5", "5.0", "0.5"), or as a Go duration ("500ms",
// "1m30s"). Negative values are refused.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || f > math.MaxInt64/float64(time.Second) {
			return 0, fmt.Errorf("%q is not a usable number of seconds", s)
		}
		d = time.Duration(f * float64(time.Second))
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, fmt.Errorf("%q is neither seconds nor a duration", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}

func parseCount(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a whole number of 0 or more", s)
	}
	return n, nil
}

type durationFlag time.Duration

func (d *durationFlag) String() string {
	if d == nil {
		return ""
	}
	return time.Duration(*d).String()
}

func (d *durationFlag) Set(s string) error {
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = durationFlag(v)
	return nil
}

// Type names the value in a command's help, for flag packages that show
// one (pflag).
func (d *durationFlag) Type() string { return "duration" }

type countFlag int

// Type names the value in a command's help, for flag packages that show
// one (pflag).
func (c *countFlag) Type() string { return "int" }

func (c *countFlag) String() string {
	if c == nil {
		return ""
	}
	return strconv.Itoa(int(*c))
}

func (c *countFlag) Set(s string) error {
	v, err := parseCount(s)
	if err != nil {
		return err
	}
	*c = countFlag(v)
	return nil
}
