package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/taskgate/taskgate/internal/pgtest"
	"github.com/taskgate/taskgate/workload"
)

func TestHITLDetailRows(t *testing.T) {
	db, af, clk := newTestStore(t)
	ctx := context.Background()
	ti := af.TaskInstance(t, pgtest.TaskInstanceRow{RunID: "r", TaskID: "t", State: "running"})
	if _, err := db.HITLDetail(ctx, ti.ID); !errors.Is(err, workload.ErrHITLNotFound) {
		t.Fatalf("no detail: %v", err)
	}
	body := "b"
	req := workload.HITLRequest{Options: []string{"A", "B"}, Subject: "s", Body: &body, Multiple: true,
		Params: json.RawMessage(`{"p":{"value":1}}`), Assignees: []workload.HITLUser{{ID: "1", Name: "One"}}}
	upsert := func(cur *workload.HITLDetail) (*workload.HITLDetail, bool, error) {
		h, changed := workload.UpsertHITL(ti.ID, cur, req, clk.Now())
		return h, changed, nil
	}
	if _, err := db.UpdateHITLDetail(ctx, ti.ID, upsert); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateHITLDetail(ctx, ti.ID, func(cur *workload.HITLDetail) (*workload.HITLDetail, bool, error) {
		h, err := workload.RespondHITL(cur, workload.HITLResponse{ChosenOptions: []string{"B"}}, clk.Now())
		return h, err == nil, err
	}); err != nil {
		t.Fatal(err)
	}
	h, err := db.HITLDetail(ctx, ti.ID)
	if err != nil || !h.ResponseReceived() || !h.Multiple || len(h.Assignees) != 1 || h.Assignees[0].Name != "One" ||
		len(h.ChosenOptions) != 1 || string(h.ParamsInput) != "{}" || !h.CreatedAt.Equal(clk.Now()) {
		t.Fatalf("detail read back: %+v, %v", h, err)
	}
	var params, defaults *string
	scanRow(t, db, `SELECT params::text, defaults::text FROM hitl_detail WHERE ti_id = $1::uuid`, []any{ti.ID}, &params, &defaults)
	if params == nil || *params != `{"p": {"value": 1}}` || defaults != nil {
		t.Errorf("params %v defaults %v, want json.dumps's and NULL", params, defaults)
	}
	// A new request drops the response and keeps the request.
	if _, err := db.UpdateHITLDetail(ctx, ti.ID, upsert); err != nil {
		t.Fatal(err)
	}
	var seen *workload.HITLDetail
	if _, err := db.UpdateTaskInstanceHITL(ctx, ti.ID, func(_ *workload.TaskInstance, h *workload.HITLDetail) error {
		seen = h
		return nil
	}); err != nil || seen == nil || seen.ResponseReceived() || seen.Subject != "s" {
		t.Fatalf("UpdateTaskInstanceHITL saw %+v, %v", seen, err)
	}
}
