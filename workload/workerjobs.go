package workload

import (
	"encoding/json"
	"errors"
	"time"
)

// The workloads of a connection test and a callback, as taskgate's operator
// side queues them: what a worker (or a test) needs to run one, with the
// token it presents. Airflow's scheduler builds its own TestConnection and
// ExecuteCallback workloads; these carry the same token and ids.

// TestConnection is a queued connection test's workload.
type TestConnection struct {
	Type             string `json:"type"`
	Token            string `json:"token"`
	ConnectionTestID string `json:"connection_test_id"`
	ConnectionID     string `json:"connection_id"`
}

// ExecuteCallback is a queued callback's workload.
type ExecuteCallback struct {
	Type     string       `json:"type"`
	Token    string       `json:"token"`
	Callback CallbackInfo `json:"callback"`
}

// CallbackInfo is the callback part of ExecuteCallback.
type CallbackInfo struct {
	ID          string          `json:"id"`
	FetchMethod string          `json:"fetch_method"`
	Data        json.RawMessage `json:"data"`
}

// ConnectionTestRequest is an operator's request to test a connection.
type ConnectionTestRequest struct {
	Connection      Connection
	CommitOnSuccess bool
	// QueuedBy names the REST user; empty offline.
	QueuedBy string
}

// NewConnectionTest builds the queued test of r with the given id.
func NewConnectionTest(id string, r ConnectionTestRequest, now time.Time) (ConnectionTest, error) {
	c := r.Connection
	switch {
	case c.ConnID == "" || c.ConnType == "":
		return ConnectionTest{}, errors.New("workload: a connection test needs a connection id and type")
	case len(c.ConnID) > 250 || len(c.ConnType) > 500:
		return ConnectionTest{}, errors.New("workload: connection id is at most 250 characters, type 500")
	case c.Port != nil && (*c.Port < 0 || *c.Port > 65535):
		return ConnectionTest{}, errors.New("workload: port must be within 0..65535")
	}
	return ConnectionTest{ID: id, Connection: c, CommitOnSuccess: r.CommitOnSuccess, State: ConnectionTestQueued,
		CreatedAt: now, UpdatedAt: now, QueuedBy: r.QueuedBy}, nil
}

// CallbackRequest is an operator's request to run a callback on a worker:
// the import path of a callable and its keyword arguments.
type CallbackRequest struct {
	Path   string
	Kwargs json.RawMessage
	// QueuedBy names the REST user; empty offline.
	QueuedBy string
}

// NewCallback builds the queued executor callback of r with the given id,
// as Airflow's ExecutorCallback stores one (fetch method import_path, data
// {"path", "kwargs", "executor"}).
func NewCallback(id string, r CallbackRequest, now time.Time) (Callback, error) {
	if r.Path == "" || len(r.Path) > 1000 {
		return Callback{}, errors.New("workload: a callback needs an import path of at most 1000 characters")
	}
	kwargs := r.Kwargs
	if len(kwargs) == 0 {
		kwargs = json.RawMessage("{}")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(kwargs, &obj); err != nil || obj == nil {
		return Callback{}, errors.New("workload: callback kwargs must be a JSON object")
	}
	data, err := json.Marshal(map[string]any{"path": r.Path, "kwargs": kwargs, "executor": nil})
	if err != nil {
		return Callback{}, err
	}
	return Callback{ID: id, Type: "executor", FetchMethod: "import_path", Data: data, State: CallbackQueued,
		PriorityWeight: 1, CreatedAt: now, QueuedBy: r.QueuedBy}, nil
}
