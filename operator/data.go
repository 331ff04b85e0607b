package operator

import (
	"context"
	"errors"
	"fmt"

	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/workload"
)

// QueueWorkload implements Service.
func (o *Operations) QueueWorkload(ctx context.Context, r workload.QueueRequest) (*workload.ExecuteTask, error) {
	if err := r.Validate(); err != nil {
		return nil, refuse(ErrInvalid, "", err)
	}
	r.QueuedBy = ActorFrom(ctx)
	ti, err := workload.Queue(ctx, o.cfg.Store, o.cfg.NewID(), r, o.now())
	if err != nil {
		return nil, classify(err)
	}
	tok, _, err := o.cfg.Signer.Sign(scopes.WorkloadClaims(ti.ID), o.cfg.WorkloadTokenLifetime)
	if err != nil {
		// The task instance stays queued: marking it failed and queueing
		// again gives it a workload, as for a workload that was lost.
		return nil, fmt.Errorf("operator: mint the workload token of task instance %s: %w", ti.ID, err)
	}
	w := workload.NewExecuteTask(ti, tok)
	return &w, nil
}

// ----- variables

// PutVariable implements Service.
func (o *Operations) PutVariable(ctx context.Context, v workload.Variable) error {
	if err := validVariable(v); err != nil {
		return err
	}
	return o.cfg.Store.PutVariable(ctx, v)
}

// CreateVariable implements Service.
func (o *Operations) CreateVariable(ctx context.Context, v workload.Variable) error {
	if err := validVariable(v); err != nil {
		return err
	}
	if _, err := o.cfg.Store.Variable(ctx, v.Key); err == nil {
		return refuse(ErrExists, "key", fmt.Errorf("operator: variable %q already exists", v.Key))
	} else if !errors.Is(err, workload.ErrNotFound) {
		return err
	}
	return o.cfg.Store.PutVariable(ctx, v)
}

// UpdateVariable implements Service.
func (o *Operations) UpdateVariable(ctx context.Context, v workload.Variable) error {
	if err := validVariable(v); err != nil {
		return err
	}
	if _, err := o.cfg.Store.Variable(ctx, v.Key); err != nil {
		return classify(err)
	}
	return o.cfg.Store.PutVariable(ctx, v)
}

func validVariable(v workload.Variable) error {
	if v.Key == "" {
		return refuse(ErrInvalid, "key", errors.New("operator: a variable key must not be empty"))
	}
	return nil
}

// Variable implements Service.
func (o *Operations) Variable(ctx context.Context, key string) (*workload.Variable, error) {
	v, err := o.cfg.Store.Variable(ctx, key)
	return v, classify(err)
}

// Variables implements Service.
func (o *Operations) Variables(ctx context.Context) ([]workload.Variable, error) {
	return o.cfg.Store.ListVariables(ctx)
}

// DeleteVariable implements Service.
func (o *Operations) DeleteVariable(ctx context.Context, key string) error {
	if _, err := o.cfg.Store.Variable(ctx, key); err != nil {
		return classify(err)
	}
	return o.cfg.Store.DeleteVariable(ctx, key)
}

// ----- connections

// PutConnection implements Service.
func (o *Operations) PutConnection(ctx context.Context, c workload.Connection) error {
	if err := validConnection(c); err != nil {
		return err
	}
	if c.Password != nil && *c.Password == RedactedPassword {
		old, err := o.cfg.Store.Connection(ctx, c.ConnID)
		switch {
		case err == nil:
			c.Password = old.Password
		case !errors.Is(err, workload.ErrNotFound):
			return err
		}
	}
	return o.cfg.Store.PutConnection(ctx, c)
}

// CreateConnection implements Service.
func (o *Operations) CreateConnection(ctx context.Context, c workload.Connection) error {
	if err := validConnection(c); err != nil {
		return err
	}
	if _, err := o.cfg.Store.Connection(ctx, c.ConnID); err == nil {
		return refuse(ErrExists, "connection_id", fmt.Errorf("operator: connection %q already exists", c.ConnID))
	} else if !errors.Is(err, workload.ErrNotFound) {
		return err
	}
	return o.cfg.Store.PutConnection(ctx, c)
}

// UpdateConnection implements Service.
func (o *Operations) UpdateConnection(ctx context.Context, c workload.Connection) (*workload.Connection, error) {
	if err := validConnection(c); err != nil {
		return nil, err
	}
	old, err := o.cfg.Store.Connection(ctx, c.ConnID)
	if err != nil {
		return nil, classify(err)
	}
	if c.Password != nil && *c.Password == RedactedPassword {
		c.Password = old.Password
	}
	if err := o.cfg.Store.PutConnection(ctx, c); err != nil {
		return nil, err
	}
	return redact(&c), nil
}

func validConnection(c workload.Connection) error {
	switch {
	case c.ConnID == "":
		return refuse(ErrInvalid, "connection_id", errors.New("operator: a connection id must not be empty"))
	case c.ConnType == "":
		return refuse(ErrInvalid, "conn_type", errors.New("operator: a connection type must not be empty"))
	}
	return nil
}

// redact replaces c's password, if any, by RedactedPassword.
func redact(c *workload.Connection) *workload.Connection {
	if c.Password != nil {
		p := RedactedPassword
		c.Password = &p
	}
	return c
}

// Connection implements Service.
func (o *Operations) Connection(ctx context.Context, id string) (*workload.Connection, error) {
	c, err := o.cfg.Store.Connection(ctx, id)
	if err != nil {
		return nil, classify(err)
	}
	return redact(c), nil
}

// Connections implements Service.
func (o *Operations) Connections(ctx context.Context) ([]workload.Connection, error) {
	cs, err := o.cfg.Store.ListConnections(ctx)
	if err != nil {
		return nil, err
	}
	for i := range cs {
		redact(&cs[i])
	}
	return cs, nil
}

// DeleteConnection implements Service.
func (o *Operations) DeleteConnection(ctx context.Context, id string) error {
	if _, err := o.cfg.Store.Connection(ctx, id); err != nil {
		return classify(err)
	}
	return o.cfg.Store.DeleteConnection(ctx, id)
}

// ----- task instances

// TaskInstances implements Service.
func (o *Operations) TaskInstances(ctx context.Context, f workload.TaskInstanceFilter) ([]workload.TaskInstance, int, error) {
	return o.cfg.Store.TaskInstances(ctx, f)
}

// MarkTaskInstance implements Service.
func (o *Operations) MarkTaskInstance(ctx context.Context, dagID, runID, taskID string, mapIndex int, s workload.State) (*workload.TaskInstance, error) {
	switch s {
	case workload.StateSuccess, workload.StateFailed, workload.StateSkipped:
	default:
		return nil, refuse(ErrInvalid, "new_state",
			fmt.Errorf("operator: a task instance is marked success, failed or skipped, not %q", s))
	}
	notFound := refuse(ErrNotFound, "", fmt.Errorf("operator: task instance %s/%s/%s (map index %d) not found",
		dagID, runID, taskID, mapIndex))
	if dagID == "" || runID == "" || taskID == "" {
		return nil, notFound // an empty field would match every value
	}
	tis, _, err := o.cfg.Store.TaskInstances(ctx, workload.TaskInstanceFilter{
		DagID: dagID, RunID: runID, TaskID: taskID, MapIndex: &mapIndex})
	if err != nil {
		return nil, err
	}
	if len(tis) == 0 {
		return nil, notFound
	}
	now := o.now()
	ti, err := o.cfg.Store.UpdateTaskInstance(ctx, tis[0].ID, func(ti *workload.TaskInstance) error {
		return workload.ForceState(ti, s, now)
	})
	return ti, classify(err)
}
