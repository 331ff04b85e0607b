package worker_test

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/taskgate/taskgate/worker"
)

// TestSettings: Airflow's defaults, overridden by AIRFLOW__WORKERS__… from
// the environment, overridden by flags.
func TestSettings(t *testing.T) {
	defaults := worker.DefaultSettings()
	for _, tc := range []struct {
		name  string
		env   []string
		flags []string
		want  func(s *worker.Settings)
	}{
		{"defaults", nil, nil, func(*worker.Settings) {}},
		{"environment", []string{
			"AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL=0.5",
			"AIRFLOW__WORKERS__MAX_FAILED_HEARTBEATS=7",
			"AIRFLOW__WORKERS__EXECUTION_API_RETRIES=9",
			"AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MIN=2.0",
			"AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MAX=1m",
			"AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT=30",
			"AIRFLOW__WORKERS__UNRELATED=x", "PATH=/bin", "NOEQUALS",
		}, nil, func(s *worker.Settings) {
			s.HeartbeatInterval, s.MaxFailedHeartbeats, s.Retries = 500*time.Millisecond, 7, 9
			s.RetryWaitMin, s.RetryWaitMax, s.Timeout = 2*time.Second, time.Minute, 30*time.Second
		}},
		{"last duplicate wins", []string{"AIRFLOW__WORKERS__EXECUTION_API_RETRIES=2", "AIRFLOW__WORKERS__EXECUTION_API_RETRIES=3"}, nil,
			func(s *worker.Settings) { s.Retries = 3 }},
		{"flags override the environment", []string{
			"AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL=0.5", "AIRFLOW__WORKERS__EXECUTION_API_RETRIES=9",
		}, []string{"--heartbeat-interval", "2s", "--kill-grace", "0.2", "--max-failed-heartbeats", "1",
			"--retry-wait-min", "100ms", "--retry-wait-max", "0.4", "--timeout", "1.5"},
			func(s *worker.Settings) {
				s.HeartbeatInterval, s.Retries, s.KillGrace, s.MaxFailedHeartbeats = 2*time.Second, 9, 200*time.Millisecond, 1
				s.RetryWaitMin, s.RetryWaitMax, s.Timeout = 100*time.Millisecond, 400*time.Millisecond, 1500*time.Millisecond
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := worker.DefaultSettings()
			if err := got.ApplyEnv(tc.env); err != nil {
				t.Fatal(err)
			}
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			got.RegisterFlags(fs)
			if err := fs.Parse(tc.flags); err != nil {
				t.Fatal(err)
			}
			want := defaults
			tc.want(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("settings (-want +got):\n%s", diff)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
	want := worker.Settings{HeartbeatInterval: 5 * time.Second, MaxFailedHeartbeats: 3, Retries: 5,
		RetryWaitMin: time.Second, RetryWaitMax: 90 * time.Second, Timeout: 5 * time.Second, KillGrace: 10 * time.Second}
	if diff := cmp.Diff(want, defaults); diff != "" {
		t.Errorf("defaults are not Airflow's (-want +got):\n%s", diff)
	}
}

// TestSettingsRefused: a bad value names its variable or flag.
func TestSettingsRefused(t *testing.T) {
	for _, env := range []string{
		"AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL=soon",
		"AIRFLOW__WORKERS__MAX_FAILED_HEARTBEATS=-1",
		"AIRFLOW__WORKERS__EXECUTION_API_RETRIES=2.5",
		"AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MIN=-1",
		"AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MAX=NaN",
		"AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT=",
	} {
		s := worker.DefaultSettings()
		err := s.ApplyEnv([]string{env})
		name, _, _ := strings.Cut(env, "=")
		if err == nil || !strings.HasPrefix(err.Error(), "worker: "+name) {
			t.Errorf("%s: error %v, want one naming the variable", env, err)
		}
	}
	for _, flags := range [][]string{{"--heartbeat-interval", "x"}, {"--retries", "-2"}, {"--kill-grace", "-1s"}} {
		s := worker.DefaultSettings()
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		s.RegisterFlags(fs)
		if err := fs.Parse(flags); err == nil {
			t.Errorf("%v: no error", flags)
		}
	}
	for name, mutate := range map[string]func(s *worker.Settings){
		"zero interval":     func(s *worker.Settings) { s.HeartbeatInterval = 0 },
		"zero failures":     func(s *worker.Settings) { s.MaxFailedHeartbeats = 0 },
		"max below min":     func(s *worker.Settings) { s.RetryWaitMin, s.RetryWaitMax = 2*time.Second, time.Second },
		"zero kill grace":   func(s *worker.Settings) { s.KillGrace = 0 },
		"negative attempts": func(s *worker.Settings) { s.Retries = -1 },
	} {
		s := worker.DefaultSettings()
		mutate(&s)
		if err := s.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, s)
		}
	}
}

// TestParseDuration: seconds as Airflow writes them, or Go durations.
func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"5": 5 * time.Second, "5.0": 5 * time.Second, "0.5": 500 * time.Millisecond, ".25": 250 * time.Millisecond,
		" 90 ": 90 * time.Second, "0": 0, "500ms": 500 * time.Millisecond, "1m30s": 90 * time.Second,
	} {
		got, err := worker.ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "-1s", "Inf", "NaN", "1e300"} {
		if _, err := worker.ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q): no error", in)
		}
	}
}
