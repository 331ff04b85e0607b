package scopes

import "sort"

// The claims of every token kind taskgate mints are built here and nowhere
// else, so that what a token of a kind carries — and therefore what the
// policy and the REST role check read back — cannot differ between the
// gateway, the operator use cases and the tools that mint tokens for tests.
// A signer adds the registered claims (jti, iat, nbf, exp, aud, iss).

const (
	// RoleClaim holds the REST user's role (auth.Role) in a REST token.
	RoleClaim = "role"
	// GenerationClaim holds the REST user's generation (auth.User's): a
	// token of an earlier holder of the same name does not match the
	// current user and is refused.
	GenerationClaim = "user_gen"
)

// WorkloadClaims are the claims of the workload token of the task
// instance tiID: the token a queued workload carries, good for its /run
// only.
func WorkloadClaims(tiID string) *Claims {
	return &Claims{Subject: tiID, Scope: string(Workload)}
}

// ExecutionClaims are the claims of the execution token of the task
// instance tiID, minted by /run.
func ExecutionClaims(tiID string) *Claims {
	return &Claims{Subject: tiID, Scope: string(Execution)}
}

// ComponentClaims are the claims of a registered component's token: an
// execution token whose sub is the component's id (never a task
// instance's) and whose ComponentClaim names its kind.
func ComponentClaims(id, kind string) *Claims {
	return &Claims{Subject: id, Scope: string(Execution), Extra: map[string]any{ComponentClaim: kind}}
}

// RESTClaims are the claims of a REST (operator) token of user with role.
// The generation is left out when empty: users stored before generations
// existed have none.
func RESTClaims(user, role, generation string) *Claims {
	extra := map[string]any{RoleClaim: role}
	if generation != "" {
		extra[GenerationClaim] = generation
	}
	return &Claims{Subject: user, Extra: extra}
}

// ConnectionTestClaims are the claims of the token of the connection test
// id, queued for a worker to run (Airflow's TestConnection workload). Airflow
// mints it as a workload token whose sub is the test's id, and its worker
// presents it as one; the "ct:self" rule, not a type of its own, keeps it to
// that test's routes, and keeps every task's workload token off them.
func ConnectionTestClaims(id string) *Claims {
	return &Claims{Subject: id, Scope: string(Workload)}
}

// CallbackClaims are the claims of the single-use token of the queued
// callback id (Airflow's ExecuteCallback workload), good for its /run only.
func CallbackClaims(id string) *Claims {
	return &Claims{Subject: id, Scope: string(Callback)}
}

// CallbackExecutionClaims are the claims of the execution token a
// callback's /run mints: sub is the callback's id, as Airflow mints it.
func CallbackExecutionClaims(id string) *Claims {
	return &Claims{Subject: id, Scope: string(Execution)}
}

// The claims of a DAG processor's tokens besides sub (its session's id).
const (
	// DagBundlesClaim lists the DAG bundles a DAG processor token grants.
	DagBundlesClaim = "dag_bundles"
	// JobClaim is the Job a dag_processor token was issued for.
	JobClaim = "job_id"
)

// DagProcessorSessionClaims are the claims of a DAG processor's session
// token (Airflow's generate_dag_processor_session_token): minted by
// trusted provisioning, exchanged at POST /jobs.
func DagProcessorSessionClaims(sessionID string, bundles []string) *Claims {
	return &Claims{Subject: sessionID, Scope: string(DagProcessorSession),
		Extra: map[string]any{DagBundlesClaim: sortedBundles(bundles)}}
}

// DagProcessorClaims are the claims of the token POST /jobs answers with:
// the session's, for the Job jobID and the bundles it registered.
func DagProcessorClaims(sessionID string, jobID int64, bundles []string) *Claims {
	return &Claims{Subject: sessionID, Scope: string(DagProcessor),
		Extra: map[string]any{DagBundlesClaim: sortedBundles(bundles), JobClaim: jobID}}
}

func sortedBundles(bundles []string) []any {
	s := append([]string(nil), bundles...)
	sort.Strings(s)
	out := make([]any, 0, len(s))
	for i, b := range s {
		if i > 0 && s[i-1] == b {
			continue
		}
		out = append(out, b)
	}
	return out
}

// DagBundles returns the token's dag_bundles claim; nil when it is absent
// or not a list of non-empty strings.
func (c *Claims) DagBundles() []string {
	raw, ok := c.Extra[DagBundlesClaim].([]any)
	if !ok {
		if s, ok := c.Extra[DagBundlesClaim].([]string); ok {
			return s
		}
		return nil
	}
	out := make([]string, 0, len(raw))
	for _, v := range raw {
		s, ok := v.(string)
		if !ok || s == "" {
			return nil
		}
		out = append(out, s)
	}
	return out
}

// JobID returns the token's job_id claim, and whether it is an integer.
func (c *Claims) JobID() (int64, bool) {
	switch v := c.Extra[JobClaim].(type) {
	case int64:
		return v, true
	case int:
		return int64(v), true
	case float64:
		if v == float64(int64(v)) {
			return int64(v), true
		}
	case interface{ Int64() (int64, error) }:
		if n, err := v.Int64(); err == nil {
			return n, true
		}
	}
	return 0, false
}
