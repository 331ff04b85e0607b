package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/google/uuid"

	"github.com/taskgate/taskgate/workload"
)

// maxWorkloadBytes bounds a workload document.
const maxWorkloadBytes = 1 << 20

// ReadWorkload reads one ExecuteTask document, as `taskgate workloads
// queue` prints it and Airflow's executors hand it to workers. Errors never
// quote the document: it holds the workload token.
func ReadWorkload(r io.Reader) (workload.ExecuteTask, error) {
	var w workload.ExecuteTask
	b, err := io.ReadAll(io.LimitReader(r, maxWorkloadBytes+1))
	if err != nil {
		return w, fmt.Errorf("worker: read workload: %w", err)
	}
	if len(b) > maxWorkloadBytes {
		return w, fmt.Errorf("worker: workload over %d bytes", maxWorkloadBytes)
	}
	if err := json.Unmarshal(b, &w); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return w, fmt.Errorf("worker: workload is not JSON (offset %d)", syn.Offset)
		}
		return w, fmt.Errorf("worker: workload: %w", err)
	}
	if err := checkTask(w); err != nil {
		return workload.ExecuteTask{}, err
	}
	return w, nil
}

// checkTask requires what supervising a task needs from its workload. Its
// errors quote no string of the document: a token pasted into the wrong
// field must not end up in a log.
func checkTask(w workload.ExecuteTask) error {
	ti := w.TI
	switch {
	case w.Type != "" && w.Type != "ExecuteTask":
		return errors.New("worker: workload type is not ExecuteTask")
	case w.Token == "":
		return errors.New("worker: workload has no token")
	case ti.DagID == "" || ti.RunID == "" || ti.TaskID == "":
		return errors.New("worker: workload lacks ti.dag_id, ti.run_id or ti.task_id")
	case ti.MapIndex < -1:
		return fmt.Errorf("worker: workload ti.map_index %d, want -1 or more", ti.MapIndex)
	case ti.TryNumber < 0:
		return fmt.Errorf("worker: workload ti.try_number %d, want 0 or more", ti.TryNumber)
	}
	if _, err := uuid.Parse(ti.ID); err != nil {
		return errors.New("worker: workload ti.id is not a UUID")
	}
	return nil
}
