package integration_test

import (
	"strings"
	"testing"
)

// TestTaskVariableWrites runs the binary under both values of [taskgate]
// task_variable_writes: with all (the default, as in Airflow) a task sets and
// deletes any variable; with none its token only reads them, PUT and DELETE
// answer 403 access_denied and the variable is unchanged, while an operator
// still writes through the CLI. Any other value stops start-up with an error
// naming the key.
func TestTaskVariableWrites(t *testing.T) {
	const denied = `{"detail":{"reason":"access_denied","message":"Tasks may not write variables on this server ([taskgate] task_variable_writes = none)"}}`
	me := host{"vars-worker.example.internal", "airflow", 5151}
	for _, tc := range []struct {
		name string
		env  []string
		// writes: whether the task's PUT and DELETE apply.
		writes bool
	}{
		{"default is all", nil, true},
		{"all", []string{"AIRFLOW__TASKGATE__TASK_VARIABLE_WRITES=all"}, true},
		{"none", []string{"AIRFLOW__TASKGATE__TASK_VARIABLE_WRITES=none"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := newDataDir(t)
			q := queueTask(t, dataDir, "vars_dag", "manual__1", "writer")
			mustCLI(t, dataDir, "variables", "set", "shared", "set by the operator")
			op := newOperator(t, dataDir)
			op.addUser("ada", "op", "a-long-password-for-ada")
			srv := startServer(t, dataDir, tc.env...)
			w := newWorker(t, srv.URL, q.Token)
			mustStatus(t, w.do("PATCH", tiPath(q.TIID, "run"), me.runPayload(t)), 200)

			put := w.do("PUT", variablePath("shared"), `{"val":"set by a task"}`)
			del := w.do("DELETE", variablePath("other"), "")
			if tc.writes {
				wantJSON(t, put, 201, `{"message":"Variable successfully set"}`)
				wantNoContent(t, del, 204)
				wantJSON(t, w.do("GET", variablePath("shared"), ""), 200, `{"key":"shared","value":"set by a task"}`)
			} else {
				wantJSON(t, put, 403, denied)
				wantJSON(t, del, 403, denied)
				wantJSON(t, w.do("GET", variablePath("shared"), ""), 200, `{"key":"shared","value":"set by the operator"}`)
				// Operators are not tasks: the CLI writes through the admin API.
				op.login(srv.URL, "ada", "a-long-password-for-ada")
				op.must("", "variables", "set", "shared", "changed by the operator")
				wantJSON(t, w.do("GET", variablePath("shared"), ""), 200, `{"key":"shared","value":"changed by the operator"}`)
			}
			// The task's own work goes on either way.
			wantNoContent(t, w.do("PUT", tiPath(q.TIID, "heartbeat"), me.heartbeat(t)), 204)
			srv.stop()
		})
	}
	t.Run("other values stop start-up", func(t *testing.T) {
		op := newOperator(t, newDataDir(t))
		r := op.run([]string{"AIRFLOW__TASKGATE__TASK_VARIABLE_WRITES=own"}, "", "serve", "--listen", "127.0.0.1:0")
		if r.code == 0 || !strings.Contains(r.stderr, "task_variable_writes") || !strings.Contains(r.stderr, "not one of all, none") {
			t.Errorf("serve with task_variable_writes = own: exit %d, stderr %q; want an error naming the key", r.code, r.stderr)
		}
	})
}
