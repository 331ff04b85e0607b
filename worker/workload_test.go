package worker_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/taskgate/taskgate/worker"
	"github.com/taskgate/taskgate/workload"
)

// TestReadWorkload: the ExecuteTask document `workloads queue` prints is
// read; documents a supervisor cannot use are refused without quoting the
// token they hold.
func TestReadWorkload(t *testing.T) {
	valid := `{"type":"ExecuteTask","token":"` + workloadToken + `","ti":{"id":"` + tiID + `","dag_version_id":"` + tiID +
		`","task_id":"extract","dag_id":"etl","run_id":"` + runID + `","try_number":2,"map_index":3,"pool_slots":1,
		"queue":"default","priority_weight":1,"parent_context_carrier":null,"context_carrier":null},
		"dag_rel_path":"","bundle_info":{"name":"dags-folder","version":null},"log_path":"x.log","sentry_integration":""}`
	got, err := worker.ReadWorkload(strings.NewReader(valid))
	if err != nil {
		t.Fatal(err)
	}
	logPath := "x.log"
	want := workload.ExecuteTask{Type: "ExecuteTask", Token: workloadToken, TI: workload.TaskInstanceDTO{
		ID: tiID, DagVersionID: tiID, TaskID: "extract", DagID: "etl", RunID: runID, TryNumber: 2, MapIndex: 3,
		PoolSlots: 1, Queue: "default", PriorityWeight: 1,
	}, BundleInfo: workload.BundleInfo{Name: "dags-folder"}, LogPath: &logPath}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("workload (-want +got):\n%s", diff)
	}

	for name, doc := range map[string]string{
		"not JSON":       `{"token":"` + workloadToken + `", `,
		"wrong type":     strings.Replace(valid, `"ExecuteTask"`, `"RunTrigger"`, 1),
		"no token":       strings.Replace(valid, workloadToken, "", 1),
		"bad id":         strings.Replace(valid, `"id":"`+tiID, `"id":"`+workloadToken, 1),
		"no task id":     strings.Replace(valid, `"task_id":"extract"`, `"task_id":""`, 1),
		"bad map index":  strings.Replace(valid, `"map_index":3`, `"map_index":-2`, 1),
		"token a number": strings.Replace(valid, `"`+workloadToken+`"`, `12`, 1),
		"empty":          ``,
	} {
		_, err := worker.ReadWorkload(strings.NewReader(doc))
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if !strings.HasPrefix(err.Error(), "worker: ") {
			t.Errorf("%s: error %q does not start with the package", name, err)
		}
		for _, part := range strings.Split(workloadToken, ".")[1:] {
			if strings.Contains(err.Error(), part) {
				t.Errorf("%s: error quotes the token: %v", name, err)
			}
		}
	}
}
