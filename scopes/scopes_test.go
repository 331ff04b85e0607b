package scopes

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	tiA = "0190e3e4-3c2b-7a8e-9d0e-6f1a2b3c4d5e"
	tiB = "0190e3e4-3c2b-7a8e-9d0e-6f1a2b3c4d5f"
)

func TestDecide(t *testing.T) {
	runPolicy := Policy{Allowed: []TokenType{Workload, Execution}, SubjectIsTaskInstance: true}
	tiPolicy := Policy{SubjectIsTaskInstance: true}
	plain := Policy{}
	ctPolicy := Policy{Allowed: []TokenType{Workload}, Self: SelfConnectionTest}
	cbRun := Policy{Allowed: []TokenType{Callback}, Self: SelfCallback}
	cbState := Policy{Allowed: []TokenType{Execution}, Self: SelfCallback}
	tests := []struct {
		name   string
		policy Policy
		claims *Claims
		pathTI string
		want   *Denial
	}{
		{"no token", plain, nil, "", ErrMissingToken},
		{"execution on default policy", plain, &Claims{Subject: tiA, Scope: "execution"}, "", nil},
		{"missing scope is execution", plain, &Claims{Subject: tiA}, "", nil},
		{"empty scope is no type", plain, &Claims{Subject: tiA, ScopePresent: true}, "",
			ErrInvalidScope},
		{"workload refused by default", plain, &Claims{Subject: tiA, Scope: "workload"}, "",
			&Denial{ReasonTypeNotAllowed, "Token type 'workload' not allowed for this endpoint. Allowed types: execution"}},
		{"unknown scope", plain, &Claims{Subject: tiA, Scope: "admin"}, "",
			ErrInvalidScope},
		{"unknown scope beats route check", runPolicy, &Claims{Subject: tiA, Scope: "queue"}, tiA,
			ErrInvalidScope},
		{"sub not a uuid", plain, &Claims{Subject: "task-1", Scope: "execution"}, "", ErrInvalidToken},
		{"empty sub", plain, &Claims{Scope: "execution"}, "", ErrInvalidToken},
		{"workload on run", runPolicy, &Claims{Subject: tiA, Scope: "workload"}, tiA, nil},
		{"execution on run", runPolicy, &Claims{Subject: tiA, Scope: "execution"}, tiA, nil},
		{"run subject mismatch", runPolicy, &Claims{Subject: tiA, Scope: "workload"}, tiB, ErrSubjectMismatch},
		{"ti route subject mismatch", tiPolicy, &Claims{Subject: tiA}, tiB, ErrSubjectMismatch},
		{"ti route bad path id", tiPolicy, &Claims{Subject: tiA}, "not-a-uuid", ErrSubjectMismatch},
		{"ti route uppercase path id", tiPolicy, &Claims{Subject: tiA}, "0190E3E4-3C2B-7A8E-9D0E-6F1A2B3C4D5E", nil},
		{"ti route hex path id", tiPolicy, &Claims{Subject: tiA}, "0190e3e43c2b7a8e9d0e6f1a2b3c4d5e", nil},
		{"workload on ti route", tiPolicy, &Claims{Subject: tiA, Scope: "workload"}, tiA,
			&Denial{ReasonTypeNotAllowed, "Token type 'workload' not allowed for this endpoint. Allowed types: execution"}},
		{"type checked before subject", tiPolicy, &Claims{Subject: tiA, Scope: "workload"}, tiB,
			&Denial{ReasonTypeNotAllowed, "Token type 'workload' not allowed for this endpoint. Allowed types: execution"}},
		{"component on a read route", Policy{Components: true},
			&Claims{Subject: tiA, Extra: map[string]any{"component": "triggerer"}}, "", nil},
		{"component refused by default", plain,
			&Claims{Subject: tiA, Extra: map[string]any{"component": "triggerer"}}, "", ErrComponentNotAllowed},
		{"component refused on ti route even with its own id", tiPolicy,
			&Claims{Subject: tiA, Extra: map[string]any{"component": "dag-processor"}}, tiA, ErrComponentNotAllowed},
		{"non-string component claim is no component", plain,
			&Claims{Subject: tiA, Extra: map[string]any{"component": 1}}, "", nil},
		{"connection test token on its own test", ctPolicy, &Claims{Subject: tiA, Scope: "workload"}, tiA, nil},
		{"connection test token on another test", ctPolicy, &Claims{Subject: tiA, Scope: "workload"}, tiB,
			ErrConnectionTestMismatch},
		{"execution token on a connection test", ctPolicy, &Claims{Subject: tiA}, tiA,
			&Denial{ReasonTypeNotAllowed, "Token type 'execution' not allowed for this endpoint. Allowed types: workload"}},
		{"callback token on its own run", cbRun, &Claims{Subject: tiA, Scope: "callback"}, tiA, nil},
		{"callback token on another callback", cbRun, &Claims{Subject: tiA, Scope: "callback"}, tiB, ErrCallbackMismatch},
		{"workload token on a callback run", cbRun, &Claims{Subject: tiA, Scope: "workload"}, tiA,
			&Denial{ReasonTypeNotAllowed, "Token type 'workload' not allowed for this endpoint. Allowed types: callback"}},
		{"callback token on a task route", tiPolicy, &Claims{Subject: tiA, Scope: "callback"}, tiA,
			&Denial{ReasonTypeNotAllowed, "Token type 'callback' not allowed for this endpoint. Allowed types: execution"}},
		{"callback token on /run of a task", runPolicy, &Claims{Subject: tiA, Scope: "callback"}, tiA,
			&Denial{ReasonTypeNotAllowed, "Token type 'callback' not allowed for this endpoint. Allowed types: execution, workload"}},
		{"callback execution token on its state", cbState, &Claims{Subject: tiA}, tiA, nil},
		{"component on a callback route", cbState,
			&Claims{Subject: tiA, Extra: map[string]any{"component": "triggerer"}}, tiA, ErrComponentNotAllowed},
		{"workload-only route lists sorted types", Policy{Allowed: []TokenType{Workload}},
			&Claims{Subject: tiA}, "",
			&Denial{ReasonTypeNotAllowed, "Token type 'execution' not allowed for this endpoint. Allowed types: workload"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(tt.policy, tt.claims, tt.pathTI, PhaseRunning)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecidePhases: a task token acts only in the phases of its own try the
// route admits; a component token has no try; an archived or unknown try is
// refused everywhere, whatever the route admits.
func TestDecidePhases(t *testing.T) {
	task := &Claims{Subject: tiA, Scope: "execution"}
	component := &Claims{Subject: tiA, Extra: map[string]any{"component": "triggerer"}}
	reads := PhasesOf(PhaseRunning, PhaseFinishing)
	every := PhasesOf(PhaseStarting, PhaseRunning, PhaseFinishing, PhaseStopped, PhaseArchived, PhaseUnknown)
	tests := []struct {
		name   string
		policy Policy
		claims *Claims
		phase  Phase
		want   *Denial
	}{
		{"running on default", Policy{}, task, PhaseRunning, nil},
		{"starting on default", Policy{}, task, PhaseStarting, ErrTryNotRunning},
		{"finishing on default", Policy{}, task, PhaseFinishing, ErrTryNotRunning},
		{"stopped on default", Policy{}, task, PhaseStopped, ErrTryNotRunning},
		{"finishing on reads", Policy{Phases: reads}, task, PhaseFinishing, nil},
		{"stopped on reads", Policy{Phases: reads}, task, PhaseStopped, ErrTryNotRunning},
		{"archived even where every phase is listed", Policy{Phases: every}, task, PhaseArchived, ErrTryArchived},
		{"retired on default: archived", Policy{}, task, PhaseRetired, ErrTryArchived},
		{"retired where every other phase is listed: archived", Policy{Phases: every}, task, PhaseRetired, ErrTryArchived},
		{"retired on reads that list it", Policy{Phases: PhasesOf(PhaseRunning, PhaseRetired)}, task, PhaseRetired, nil},
		{"unknown even where every phase is listed", Policy{Phases: every}, task, PhaseUnknown, ErrTryUnknown},
		{"task token never looked up", Policy{Phases: every}, task, PhaseNone, ErrTryUnknown},
		{"component has no phase", Policy{Components: true}, component, PhaseNone, nil},
		{"component ignores a phase", Policy{Components: true}, component, PhaseArchived, nil},
		{"a connection test token names no try", Policy{Allowed: []TokenType{Workload}, Self: SelfConnectionTest},
			&Claims{Subject: tiA, Scope: "workload"}, PhaseNone, nil},
		{"a callback token names no try", Policy{Allowed: []TokenType{Callback}, Self: SelfCallback},
			&Claims{Subject: tiA, Scope: "callback"}, PhaseUnknown, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Decide(tt.policy, tt.claims, tt.claims.Subject, tt.phase)); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPhaseRenewable(t *testing.T) {
	for p := PhaseNone; p <= PhaseUnknown; p++ {
		want := p == PhaseStarting || p == PhaseRunning
		if got := p.Renewable(); got != want {
			t.Errorf("%s.Renewable() = %v, want %v", p, got, want)
		}
	}
}

func TestDenialIsError(t *testing.T) {
	var err error = Decide(Policy{}, nil, "", PhaseRunning)
	var d *Denial
	if !errors.As(err, &d) || d.Reason != ReasonMissingToken {
		t.Fatalf("errors.As(%v) = %v", err, d)
	}
}

func TestAllowedTypesSorted(t *testing.T) {
	p := Policy{Allowed: []TokenType{Workload, Execution}}
	if diff := cmp.Diff([]TokenType{Execution, Workload}, p.AllowedTypes()); diff != "" {
		t.Error(diff)
	}
	if diff := cmp.Diff([]TokenType{Workload, Execution}, p.Allowed); diff != "" {
		t.Errorf("AllowedTypes changed the policy: %s", diff)
	}
	if diff := cmp.Diff([]TokenType{Execution}, Policy{}.AllowedTypes()); diff != "" {
		t.Error(diff)
	}
}

func TestCanonicalUUID(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{tiA, tiA, true},
		{"0190E3E4-3C2B-7A8E-9D0E-6F1A2B3C4D5E", tiA, true},
		{"0190e3e43c2b7a8e9d0e6f1a2b3c4d5e", tiA, true},
		{"{" + tiA + "}", tiA, true},
		{"urn:uuid:" + tiA, tiA, true},
		{"", "", false},
		{"0190e3e4-3c2b-7a8e-9d0e-6f1a2b3c4d5", "", false},
		{"0190e3e4-3c2b-7a8e-9d0e-6f1a2b3c4d5g", "", false},
		{"0190e3e4x3c2b-7a8e-9d0e-6f1a2b3c4d5e", "", false},
		{"0190e3e4-3c2b-7a8e-9d0e-6f1a2b3c4d5e0", "", false},
		{"../../etc/passwd", "", false},
	}
	for _, tt := range tests {
		got, ok := CanonicalUUID(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("CanonicalUUID(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzCanonicalUUID(f *testing.F) {
	for _, s := range []string{tiA, "0190e3e43c2b7a8e9d0e6f1a2b3c4d5e", "{" + tiA + "}", "", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, ok := CanonicalUUID(s)
		if !ok {
			return
		}
		// A canonical form is itself canonical, and names the same UUID.
		c2, ok2 := CanonicalUUID(c)
		if !ok2 || c2 != c || !SameUUID(s, c) || len(c) != 36 {
			t.Fatalf("CanonicalUUID(%q) = %q, not a fixed point (%q, %v)", s, c, c2, ok2)
		}
	})
}

func BenchmarkDecide(b *testing.B) {
	p := Policy{Allowed: []TokenType{Execution}, SubjectIsTaskInstance: true}
	c := &Claims{Subject: tiA, Scope: "execution"}
	upper := "0190E3E4-3C2B-7A8E-9D0E-6F1A2B3C4D5E"
	b.ReportAllocs()
	for b.Loop() {
		if d := Decide(p, c, upper, PhaseRunning); d != nil {
			b.Fatal(d)
		}
	}
}

// TestDecideDagProcessor: a session token buys job registration alone; a
// processor token acts on its own Job's path while that Job is open, and on
// complete (JobUnchecked) also once it closed.
func TestDecideDagProcessor(t *testing.T) {
	register := Policy{Allowed: []TokenType{DagProcessorSession}}
	job := Policy{Allowed: []TokenType{DagProcessor}, Self: SelfJob}
	complete := Policy{Allowed: []TokenType{DagProcessor}, Self: SelfJob, JobUnchecked: true}
	read := Policy{Allowed: []TokenType{Execution, DagProcessor}, DagBundle: true}
	session := DagProcessorSessionClaims(tiA, []string{"b", "a"})
	proc := DagProcessorClaims(tiA, 7, []string{"a"})
	tests := []struct {
		name   string
		policy Policy
		claims *Claims
		path   string
		phase  Phase
		want   *Denial
	}{
		{"session registers", register, session, "", PhaseNone, nil},
		{"session without bundles", register, &Claims{Subject: tiA, Scope: "dag_processor_session"}, "", PhaseNone,
			ErrInvalidToken},
		{"session with an empty bundle list", register, DagProcessorSessionClaims(tiA, nil), "", PhaseNone,
			ErrInvalidToken},
		{"processor token on registration", register, proc, "", PhaseRunning,
			&Denial{ReasonTypeNotAllowed, "Token type 'dag_processor' not allowed for this endpoint. Allowed types: dag_processor_session"}},
		{"session on a job route", job, session, "7", PhaseNone,
			&Denial{ReasonTypeNotAllowed, "Token type 'dag_processor_session' not allowed for this endpoint. Allowed types: dag_processor"}},
		{"processor on its open job", job, proc, "7", PhaseRunning, nil},
		{"processor on another job", job, proc, "8", PhaseRunning, ErrJobNotFound("8")},
		{"processor on its closed job", job, proc, "7", PhaseUnknown, ErrJobClosed},
		{"complete takes a closed job's token", complete, proc, "7", PhaseUnknown, nil},
		{"complete of another job", complete, proc, "8", PhaseUnknown, ErrJobNotFound("8")},
		{"closed job on another job's path", job, proc, "8", PhaseUnknown, ErrJobClosed},
		{"a path that is no integer is the handler's", job, proc, "x", PhaseRunning, nil},
		{"processor without job_id", job, &Claims{Subject: tiA, Scope: "dag_processor",
			Extra: map[string]any{DagBundlesClaim: []any{"a"}}}, "7", PhaseRunning, ErrInvalidToken},
		{"processor token on a task route", Policy{}, proc, "", PhaseRunning,
			&Denial{ReasonTypeNotAllowed, "Token type 'dag_processor' not allowed for this endpoint. Allowed types: execution"}},
		{"execution token on a job route", job, &Claims{Subject: tiA}, "7", PhaseRunning,
			&Denial{ReasonTypeNotAllowed, "Token type 'execution' not allowed for this endpoint. Allowed types: dag_processor"}},
		{"processor with an empty bundle list", job, &Claims{Subject: tiA, Scope: "dag_processor",
			Extra: map[string]any{DagBundlesClaim: []any{}, JobClaim: int64(7)}}, "7", PhaseRunning, ErrInvalidToken},
		{"processor with an empty bundle name", job, &Claims{Subject: tiA, Scope: "dag_processor",
			Extra: map[string]any{DagBundlesClaim: []any{""}, JobClaim: int64(7)}}, "7", PhaseRunning, ErrInvalidToken},
		{"processor reads while its job is open", read, proc, "", PhaseRunning, nil},
		{"processor reads after its job closed", read, proc, "", PhaseUnknown, ErrJobClosed},
		{"session token reads nothing", read, session, "", PhaseNone,
			&Denial{ReasonTypeNotAllowed, "Token type 'dag_processor_session' not allowed for this endpoint. Allowed types: dag_processor, execution"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(tt.policy, tt.claims, tt.path, tt.phase)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSelectBundle: on a route that reads for a bundle, a dag_processor
// token names one it was granted in the Airflow-Dag-Bundle header; other
// tokens and other routes ignore the header.
func TestSelectBundle(t *testing.T) {
	read := Policy{Allowed: []TokenType{Execution, DagProcessor}, DagBundle: true}
	proc := DagProcessorClaims(tiA, 7, []string{"granted", "second"})
	tests := []struct {
		name       string
		policy     Policy
		claims     *Claims
		header     string
		want       string
		wantDenial *Denial
	}{
		{"granted bundle", read, proc, "granted", "granted", nil},
		{"another granted bundle", read, proc, "second", "second", nil},
		{"no header", read, proc, "", "", ErrBundleMissing},
		{"bundle not granted", read, proc, "other", "", &Denial{ReasonBundleNotGranted, "Token is not granted Dag bundle 'other'"}},
		{"a name is compared whole", read, proc, "grant", "", ErrBundleNotGranted("grant")},
		{"quoted as Python does", read, proc, "it's", "", &Denial{ReasonBundleNotGranted, `Token is not granted Dag bundle "it's"`}},
		{"execution token ignores the header", read, &Claims{Subject: tiA}, "other", "", nil},
		{"component ignores the header", read, ComponentClaims(tiA, "triggerer"), "", "", nil},
		{"route without bundles ignores it", Policy{Allowed: []TokenType{DagProcessor}, Self: SelfJob}, proc, "", "", nil},
		{"no claims", read, nil, "granted", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, d := SelectBundle(tt.policy, tt.claims, tt.header)
			if got != tt.want {
				t.Errorf("bundle = %q, want %q", got, tt.want)
			}
			if diff := cmp.Diff(tt.wantDenial, d); diff != "" {
				t.Errorf("denial (-want +got):\n%s", diff)
			}
		})
	}
}
