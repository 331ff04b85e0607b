package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/workload"
)

// DAG processor Jobs (Airflow's /jobs routes, API version 2027-02-28): a
// DAG processor exchanges its session token for a Job and a dag_processor
// token, heartbeats the Job (the answer's state tells it whether to stop)
// and completes it, which ends every token issued for it.

// jobRegisterBody is Airflow's JobRegisterBody.
type jobRegisterBody struct {
	RegistrationID string   `json:"registration_id"`
	Hostname       string   `json:"hostname"`
	Unixname       *string  `json:"unixname"`
	BundleNames    []string `json:"bundle_names"`
}

// jobRegisterResponse is Airflow's JobRegisterResponse.
type jobRegisterResponse struct {
	JobID int64  `json:"job_id"`
	Token string `json:"token"`
}

// jobHeartbeatResponse is Airflow's JobHeartbeatResponse.
type jobHeartbeatResponse struct {
	State workload.JobState `json:"state"`
}

// jobCompleteBody is Airflow's JobCompleteBody.
type jobCompleteBody struct {
	State workload.JobState `json:"state"`
}

var jobModels = map[string]routeModel{
	"POST /execution/jobs": {Request: jobRegisterBody{}, Response: jobRegisterResponse{},
		Status: http.StatusCreated},
	"POST /execution/jobs/:job_id/heartbeat": {Response: jobHeartbeatResponse{}},
	"POST /execution/jobs/:job_id/complete":  {Request: jobCompleteBody{}, Status: http.StatusNoContent},
}

// jobIDParam reads {job_id} as pydantic's lax int does.
func jobIDParam(c echo.Context) (int64, error) {
	raw := c.Param("job_id")
	id, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
	if err != nil {
		return 0, &ValidationError{[]FieldError{{Type: "int_parsing", Loc: []any{"path", "job_id"},
			Msg: "Input should be a valid integer, unable to parse string as an integer", Input: raw}}}
	}
	return id, nil
}

func jobNotFound(id int64) error {
	return notFound(fmt.Sprintf("Job %d not found for this token", id))
}

// strLen checks a string field's length in characters, as pydantic's
// min_length and max_length do.
func (o *object) strLen(name string, s *string, minLen, maxLen int) {
	if s == nil {
		return
	}
	n := len([]rune(*s))
	loc := append(append([]any(nil), o.loc...), name)
	switch {
	case n < minLen:
		o.errs = append(o.errs, FieldError{Type: "string_too_short", Loc: loc,
			Msg: fmt.Sprintf("String should have at least %d character", minLen), Input: *s,
			Ctx: map[string]any{"min_length": minLen}})
	case n > maxLen:
		o.errs = append(o.errs, FieldError{Type: "string_too_long", Loc: loc,
			Msg: fmt.Sprintf("String should have at most %d characters", maxLen), Input: *s,
			Ctx: map[string]any{"max_length": maxLen}})
	}
}

// decodeJobRegister validates a JobRegisterBody.
func decodeJobRegister(body []byte) (jobRegisterBody, error) {
	o, verr := decodeObject(body)
	if verr != nil {
		return jobRegisterBody{}, verr
	}
	var r jobRegisterBody
	before := len(o.errs)
	o.uuidField("registration_id")
	if v, ok := o.fields["registration_id"]; ok && len(o.errs) == before {
		var id string
		_ = json.Unmarshal(v, &id)
		r.RegistrationID, _ = scopes.CanonicalUUID(id)
	}
	if h := o.str("hostname", true, false); h != nil {
		o.strLen("hostname", h, 1, 500)
		r.Hostname = *h
	}
	r.Unixname = o.str("unixname", false, true)
	o.strLen("unixname", r.Unixname, 0, 1000)
	r.BundleNames = o.strList("bundle_names", false, true, 1)
	o.forbidExtra()
	if verr := o.err(); verr != nil {
		return jobRegisterBody{}, verr
	}
	return r, nil
}

// handleRegisterJob is POST /jobs: the session's registration, answered
// 201 with the Job's id and a dag_processor token for it.
func (s *Server) handleRegisterJob(c echo.Context) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	r, err := decodeJobRegister(body)
	if err != nil {
		return err
	}
	claims := claimsOf(c)
	session, _ := scopes.CanonicalUUID(claims.Subject)
	bundles, err := workload.RegisteredBundles(claims.DagBundles(), r.BundleNames)
	if err != nil {
		return err
	}
	reg := workload.JobRegistration{SessionID: session, RegistrationID: r.RegistrationID, Hostname: r.Hostname,
		Unixname: r.Unixname}
	threshold := s.cfg.DagProcessorHealthCheckThreshold
	if threshold <= 0 {
		threshold = workload.DefaultDagProcessorHealthCheckThreshold
	}
	now := s.now()
	job, err := s.cfg.Store.RegisterJob(c.Request().Context(), r.RegistrationID, session,
		func(registered, previous *workload.Job) (workload.JobDecision, error) {
			return workload.RegisterJob(reg, bundles, registered, previous, now, threshold)
		})
	if err != nil {
		return err
	}
	// The Job's token never outlives the session's: provisioning ends a
	// processor's access by no longer renewing the session token.
	life := s.cfg.ExecutionTokenLifetime
	if left := claims.ExpiresAt.Sub(now); !claims.ExpiresAt.IsZero() && left < life {
		life = left.Truncate(time.Second)
	}
	if life <= 0 {
		return scopes.ErrInvalidToken
	}
	tok, issued, err := s.cfg.Signer.Sign(scopes.DagProcessorClaims(session, job.ID, bundles), life)
	if err != nil {
		return fmt.Errorf("gateway: mint the token of job %d: %w", job.ID, err)
	}
	s.log.Info("dag processor job registered", zap.Int64("job_id", job.ID), zap.String("session", session),
		zap.String("jti", claims.ID), zap.String("job_jti", issued.ID))
	return c.JSON(http.StatusCreated, jobRegisterResponse{JobID: job.ID, Token: tok})
}

// handleJobHeartbeat is POST /jobs/{job_id}/heartbeat: records the
// heartbeat and answers the Job's state ("restarting" asks the processor
// to stop).
func (s *Server) handleJobHeartbeat(c echo.Context) error {
	id, err := jobIDParam(c)
	if err != nil {
		return err
	}
	now := s.now()
	job, err := s.cfg.Store.UpdateJob(c.Request().Context(), id, func(j *workload.Job) error {
		j.LatestHeartbeat = now
		return nil
	})
	if errors.Is(err, workload.ErrNotFound) {
		return jobNotFound(id)
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, jobHeartbeatResponse{State: job.State})
}

// decodeJobComplete validates a JobCompleteBody.
func decodeJobComplete(body []byte) (jobCompleteBody, error) {
	o, verr := decodeObject(body)
	if verr != nil {
		return jobCompleteBody{}, verr
	}
	var r jobCompleteBody
	if st := o.str("state", true, false); st != nil {
		switch js := workload.JobState(*st); js {
		case workload.JobSuccess, workload.JobFailed:
			r.State = js
		default:
			o.errs = append(o.errs, FieldError{Type: "enum", Loc: []any{"body", "state"},
				Msg: "Input should be 'success' or 'failed'", Input: *st,
				Ctx: map[string]any{"expected": "'success' or 'failed'"}})
		}
	}
	o.forbidExtra()
	if verr := o.err(); verr != nil {
		return jobCompleteBody{}, verr
	}
	return r, nil
}

// handleCompleteJob is POST /jobs/{job_id}/complete: the Job's final
// state, once; a repeat succeeds without changing it. It takes the token
// of a closed Job (the policy's JobUnchecked), so that a retry after a
// lost response succeeds.
func (s *Server) handleCompleteJob(c echo.Context) error {
	id, err := jobIDParam(c)
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	r, err := decodeJobComplete(body)
	if err != nil {
		return err
	}
	session := claimsOf(c).Subject
	now := s.now()
	_, err = s.cfg.Store.UpdateJob(c.Request().Context(), id, func(j *workload.Job) error {
		return workload.CompleteJob(j, session, r.State, now)
	})
	if errors.Is(err, workload.ErrNotFound) {
		return jobNotFound(id)
	} else if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
