package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/taskgate/taskgate/operator"
	"github.com/taskgate/taskgate/workload"
)

// The admin API under /api/v2 follows Airflow's public REST API shapes where
// Airflow has them (variables, connections, task instances) and adds
// taskgate's own resources (workloads, components, users, revocations).
// Its rules live in package operator: the handlers decode the request, call
// s.ops, and encode the answer or map the refusal to Airflow's status and
// detail (statusOf maps the refusals no handler words itself).

// operations builds the use cases the admin handlers call, over the
// gateway's own store (its writes keep the read caches right), its
// revocation set (a revocation is refused from the next request on) and
// its task-token signer.
func (s *Server) operations() (*operator.Operations, error) {
	return operator.New(operator.Config{
		Store: s.cfg.Store, Identities: s.cfg.Auth, Revoker: s.revoked, Signer: s.cfg.Signer, Keys: s.cfg.Keys,
		WorkloadTokenLifetime: s.cfg.WorkloadTokenLifetime, ComponentTokenLifetime: s.cfg.ExecutionTokenLifetime,
		APITokenLifetime: s.cfg.APITokenLifetime, CLITokenLifetime: s.cfg.CLITokenLifetime,
		BcryptCost: s.cfg.BcryptCost, NewID: s.cfg.NewID, Now: s.now,
	})
}

// actorContext is the request's context naming the REST user acting, so
// that what they queue or register is ended when they are removed.
func (s *Server) actorContext(c echo.Context) context.Context {
	return operator.WithActor(c.Request().Context(), restClaimsOf(c).Subject)
}

// page reads limit/offset the way Airflow's public API does.
func page(c echo.Context) (limit, offset int, err error) {
	if limit, err = queryInt(c, "limit", 50, 0, 1000); err != nil {
		return 0, 0, err
	}
	offset, err = queryInt(c, "offset", 0, 0, 1<<31-1)
	return limit, offset, err
}

// window returns the [offset, offset+limit) part of n items.
func window(n, limit, offset int) (int, int) {
	lo := min(offset, n)
	return lo, min(lo+limit, n)
}

// ----- task instances

// TaskInstanceBody is a task instance as the admin API shows it (Airflow's
// REST API names). The CLI's admin API client decodes it too, so the two
// ends of the wire share one definition.
type TaskInstanceBody struct {
	ID               string         `json:"id"`
	TaskID           string         `json:"task_id"`
	DagID            string         `json:"dag_id"`
	DagRunID         string         `json:"dag_run_id"`
	MapIndex         int            `json:"map_index"`
	TryNumber        int            `json:"try_number"`
	MaxTries         int            `json:"max_tries"`
	State            workload.State `json:"state"`
	Hostname         *string        `json:"hostname"`
	Unixname         *string        `json:"unixname"`
	PID              *int           `json:"pid"`
	Queue            string         `json:"queue"`
	PoolSlots        int            `json:"pool_slots"`
	PriorityWeight   int            `json:"priority_weight"`
	QueuedWhen       *time.Time     `json:"queued_when"`
	StartDate        *time.Time     `json:"start_date"`
	EndDate          *time.Time     `json:"end_date"`
	LastHeartbeatAt  *time.Time     `json:"last_heartbeat_at"`
	RenderedMapIndex *string        `json:"rendered_map_index"`
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func newTaskInstanceBody(ti workload.TaskInstance) TaskInstanceBody {
	b := TaskInstanceBody{
		ID: ti.ID, TaskID: ti.TaskID, DagID: ti.DagID, DagRunID: ti.RunID, MapIndex: ti.MapIndex,
		TryNumber: ti.TryNumber, MaxTries: ti.MaxTries, State: ti.State, Hostname: optString(ti.Hostname),
		Unixname: optString(ti.Unixname), Queue: ti.Queue, PoolSlots: ti.PoolSlots, PriorityWeight: ti.PriorityWeight,
		QueuedWhen: ti.QueuedAt, StartDate: ti.StartDate, EndDate: ti.EndDate, LastHeartbeatAt: ti.LastHeartbeatAt,
		RenderedMapIndex: ti.RenderedMapIndex,
	}
	if ti.PID != 0 {
		pid := ti.PID
		b.PID = &pid
	}
	return b
}

// TaskInstance is the task instance b shows: the inverse of
// newTaskInstanceBody.
func (b TaskInstanceBody) TaskInstance() workload.TaskInstance {
	ti := workload.TaskInstance{
		ID: b.ID, TaskID: b.TaskID, DagID: b.DagID, RunID: b.DagRunID, MapIndex: b.MapIndex,
		TryNumber: b.TryNumber, MaxTries: b.MaxTries, State: b.State, Queue: b.Queue, PoolSlots: b.PoolSlots,
		PriorityWeight: b.PriorityWeight, QueuedAt: b.QueuedWhen, StartDate: b.StartDate, EndDate: b.EndDate,
		LastHeartbeatAt: b.LastHeartbeatAt, RenderedMapIndex: b.RenderedMapIndex,
	}
	if b.Hostname != nil {
		ti.Hostname = *b.Hostname
	}
	if b.Unixname != nil {
		ti.Unixname = *b.Unixname
	}
	if b.PID != nil {
		ti.PID = *b.PID
	}
	return ti
}

// tiFilter reads the {dag_id}/{dag_run_id} path ("~" = any, as in Airflow)
// and the state query parameter.
func tiFilter(c echo.Context) (workload.TaskInstanceFilter, error) {
	var f workload.TaskInstanceFilter
	dag, err := pathParam(c, "dag_id")
	if err != nil {
		return f, err
	}
	run, err := pathParam(c, "dag_run_id")
	if err != nil {
		return f, err
	}
	if dag != "~" {
		f.DagID = dag
	}
	if run != "~" {
		f.RunID = run
	}
	f.State = workload.State(c.QueryParam("state"))
	return f, nil
}

// handleListTaskInstances is GET
// /api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances.
func (s *Server) handleListTaskInstances(c echo.Context) error {
	f, err := tiFilter(c)
	if err != nil {
		return err
	}
	if f.Limit, f.Offset, err = page(c); err != nil {
		return err
	}
	if f.Limit == 0 {
		return c.JSON(http.StatusOK, map[string]any{"task_instances": []TaskInstanceBody{}, "total_entries": 0})
	}
	tis, total, err := s.ops.TaskInstances(c.Request().Context(), f)
	if err != nil {
		return err
	}
	out := make([]TaskInstanceBody, 0, len(tis))
	for _, ti := range tis {
		out = append(out, newTaskInstanceBody(ti))
	}
	return c.JSON(http.StatusOK, map[string]any{"task_instances": out, "total_entries": total})
}

// findTaskInstance resolves …/taskInstances/{task_id}?map_index=N to the
// current try.
func (s *Server) findTaskInstance(c echo.Context) (*workload.TaskInstance, error) {
	f, err := tiFilter(c)
	if err != nil {
		return nil, err
	}
	if f.DagID == "" || f.RunID == "" {
		return nil, &APIError{Status: http.StatusBadRequest, Detail: "dag_id and dag_run_id are required here"}
	}
	if f.TaskID, err = pathParam(c, "task_id"); err != nil {
		return nil, err
	}
	mi, err := queryInt(c, "map_index", -1, -1, 1<<31-1)
	if err != nil {
		return nil, err
	}
	f.MapIndex, f.State = &mi, ""
	tis, _, err := s.ops.TaskInstances(c.Request().Context(), f)
	if err != nil {
		return nil, err
	}
	if len(tis) == 0 {
		return nil, &APIError{Status: http.StatusNotFound, Detail: fmt.Sprintf(
			"The Task Instance with dag_id: `%s`, run_id: `%s`, task_id: `%s` and map_index: `%d` was not found",
			f.DagID, f.RunID, f.TaskID, mi)}
	}
	return &tis[0], nil
}

// handleGetTaskInstance is GET …/taskInstances/{task_id}.
func (s *Server) handleGetTaskInstance(c echo.Context) error {
	ti, err := s.findTaskInstance(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newTaskInstanceBody(*ti))
}

// handlePatchTaskInstance is PATCH …/taskInstances/{task_id} {"new_state"}:
// an operator marks a task success, failed or skipped. A running task's
// worker learns it on its next heartbeat and stops the task.
func (s *Server) handlePatchTaskInstance(c echo.Context) error {
	// The task instance is looked up before the body is read: an unknown
	// one is a 404 whatever the body says.
	ti, err := s.findTaskInstance(c)
	if err != nil {
		return err
	}
	o, err := readObject(c)
	if err != nil {
		return err
	}
	st := o.literal("new_state", string(workload.StateSuccess), string(workload.StateFailed), string(workload.StateSkipped))
	o.forbidExtra()
	if verr := o.err(); verr != nil {
		return verr
	}
	updated, err := s.ops.MarkTaskInstance(c.Request().Context(), ti.DagID, ti.RunID, ti.TaskID, ti.MapIndex, workload.State(st))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newTaskInstanceBody(*updated))
}

// handleAdminGetXCom is GET …/taskInstances/{task_id}/xcomEntries/{key}
// ?map_index=N: an XCom as Airflow's public API shows it.
func (s *Server) handleAdminGetXCom(c echo.Context) error {
	f, err := tiFilter(c)
	if err != nil {
		return err
	}
	task, err := pathParam(c, "task_id")
	if err != nil {
		return err
	}
	key, err := pathParam(c, "*")
	if err != nil {
		return err
	}
	mi, err := queryInt(c, "map_index", -1, -1, 1<<31-1)
	if err != nil {
		return err
	}
	xs, err := s.cfg.Store.XComs(c.Request().Context(), workload.XComQuery{
		DagID: f.DagID, RunID: f.RunID, TaskID: task, Key: key, MapIndex: &mi,
	})
	if err != nil {
		return err
	}
	if len(xs) == 0 {
		return &APIError{Status: http.StatusNotFound, Detail: fmt.Sprintf("XCom entry with key: `%s` not found", key)}
	}
	x := xs[0]
	return c.JSON(http.StatusOK, map[string]any{
		"key": x.Key, "value": valueOrNull(x.Value), "map_index": x.MapIndex, "task_id": x.TaskID,
		"dag_id": x.DagID, "run_id": x.RunID, "timestamp": x.Timestamp,
	})
}

// ----- workloads

// handleQueueWorkload is POST /api/v2/workloads: queue a task instance and
// return its ExecuteTask with a workload token, as a scheduler would.
func (s *Server) handleQueueWorkload(c echo.Context) error {
	o, err := readObject(c)
	if err != nil {
		return err
	}
	var r workload.QueueRequest
	for _, f := range []struct {
		name string
		dst  *string
	}{{"dag_id", &r.DagID}, {"run_id", &r.RunID}, {"task_id", &r.TaskID}} {
		if v := o.str(f.name, true, false); v != nil {
			*f.dst = *v
		}
	}
	r.MapIndex = -1
	for _, f := range []struct {
		name string
		dst  *int
	}{{"map_index", &r.MapIndex}, {"try_number", &r.TryNumber}, {"max_tries", &r.MaxTries}} {
		if v := o.integer(f.name, false, false); v != nil {
			*f.dst = *v
		}
	}
	if v := o.str("dag_rel_path", false, true); v != nil {
		r.DagRelPath = *v
	}
	o.forbidExtra()
	if verr := o.err(); verr != nil {
		return verr
	}
	w, err := s.ops.QueueWorkload(s.actorContext(c), r)
	if errors.Is(err, operator.ErrExists) {
		return &APIError{Status: http.StatusConflict, Detail: "The task instance is already queued or running"}
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, w)
}
