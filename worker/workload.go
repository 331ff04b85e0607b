package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

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

// TakeWorkload reads the ExecuteTask document the worker was handed — from
// the file at path, or from stdin when path is "-" — and removes the file.
//
// The workload holds the workload token, which /run swaps for the task's
// execution token, and the task's command runs as the worker's user: it can
// find the file through /proc/<worker pid>/cmdline and read whatever that
// user can read. So the file is refused, unread, when group or others may
// read or write it (its mode must be 0600 or stricter, which `taskgate
// workloads queue --output FILE` creates), refused when it is a symbolic
// link or has other hard links (removing this name would leave the token
// behind another), and removed once it has been read and parsed, before
// anything is started; a file that cannot be removed is an error, for the
// same reason. Standard input leaves no file at all. A pipe or other
// non-regular file is read but not removed: it holds nothing afterwards.
func TakeWorkload(path string, stdin io.Reader) (workload.ExecuteTask, error) {
	if path == "-" {
		return ReadWorkload(stdin)
	}
	f, err := os.Open(path)
	if err != nil {
		return workload.ExecuteTask{}, fmt.Errorf("worker: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return workload.ExecuteTask{}, fmt.Errorf("worker: %w", err)
	}
	if err := checkPrivate(path, fi); err != nil {
		return workload.ExecuteTask{}, err
	}
	regular := fi.Mode().IsRegular()
	if regular {
		li, err := os.Lstat(path)
		if err != nil {
			return workload.ExecuteTask{}, fmt.Errorf("worker: %w", err)
		}
		if li.Mode()&os.ModeSymlink != 0 {
			return workload.ExecuteTask{}, fmt.Errorf("worker: workload file %s is a symbolic link: "+
				"give the file itself, which the worker removes after reading it", path)
		}
	}
	w, err := ReadWorkload(f)
	if err != nil {
		return workload.ExecuteTask{}, fmt.Errorf("%w (in %s)", err, path)
	}
	if regular {
		if err := os.Remove(path); err != nil {
			return workload.ExecuteTask{}, fmt.Errorf("worker: remove workload file %s after reading it "+
				"(the task command runs as this user and could read its token): %w", path, err)
		}
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
