package operator

import (
	"context"
	"fmt"

	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/workload"
)

// QueueConnectionTest implements Service.
func (o *Operations) QueueConnectionTest(ctx context.Context, r workload.ConnectionTestRequest) (*workload.TestConnection, error) {
	r.QueuedBy = ActorFrom(ctx)
	ct, err := workload.NewConnectionTest(o.cfg.NewID(), r, o.now())
	if err != nil {
		return nil, refuse(ErrInvalid, "", err)
	}
	if err := o.cfg.Store.InsertConnectionTest(ctx, ct); err != nil {
		return nil, classify(err)
	}
	tok, _, err := o.cfg.Signer.Sign(scopes.ConnectionTestClaims(ct.ID), o.cfg.WorkloadTokenLifetime)
	if err != nil {
		// The test stays queued with no token: nothing can report on it.
		return nil, fmt.Errorf("operator: mint the token of connection test %s: %w", ct.ID, err)
	}
	return &workload.TestConnection{Type: "TestConnection", Token: tok, ConnectionTestID: ct.ID,
		ConnectionID: ct.Connection.ConnID}, nil
}

// QueueCallback implements Service.
func (o *Operations) QueueCallback(ctx context.Context, r workload.CallbackRequest) (*workload.ExecuteCallback, error) {
	r.QueuedBy = ActorFrom(ctx)
	cb, err := workload.NewCallback(o.cfg.NewID(), r, o.now())
	if err != nil {
		return nil, refuse(ErrInvalid, "", err)
	}
	if err := o.cfg.Store.InsertCallback(ctx, cb); err != nil {
		return nil, classify(err)
	}
	tok, _, err := o.cfg.Signer.Sign(scopes.CallbackClaims(cb.ID), o.cfg.WorkloadTokenLifetime)
	if err != nil {
		return nil, fmt.Errorf("operator: mint the token of callback %s: %w", cb.ID, err)
	}
	return &workload.ExecuteCallback{Type: "ExecuteCallback", Token: tok,
		Callback: workload.CallbackInfo{ID: cb.ID, FetchMethod: cb.FetchMethod, Data: cb.Data}}, nil
}
