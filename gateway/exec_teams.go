package gateway

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/workload"
)

// Teams is what [core] multi_team needs of the store: Airflow's teams
// (3.2). A team name is "" for none.
type Teams interface {
	// TaskInstanceTeam is the team of the task instance's DAG's bundle.
	TaskInstanceTeam(ctx context.Context, tiID string) (string, error)
	// BundleTeam is the team of the DAG bundle.
	BundleTeam(ctx context.Context, bundle string) (string, error)
	// VariableTeam and ConnectionTeam are the record's team_name.
	VariableTeam(ctx context.Context, key string) (string, error)
	ConnectionTeam(ctx context.Context, id string) (string, error)
	// PutTeamVariable and DeleteTeamVariable are Airflow's Variable.set and
	// Variable.delete with the writing task's team: the write sets
	// team_name to it (NULL for none); the delete removes the variable
	// only when its team_name is that team or NULL.
	PutTeamVariable(ctx context.Context, v workload.Variable, team string) error
	// TeamVariableKeys is Store.VariableKeys over team's and unteamed
	// variables.
	TeamVariableKeys(ctx context.Context, team, prefix string, limit, offset int) (keys []string, total int, err error)
	DeleteTeamVariable(ctx context.Context, key, team string) error
}

// requestTeam is the team the request's token acts for under [core]
// multi_team, as Airflow's get_team_name_dep resolves it: a DAG processor
// token's is the team of the bundle it named in the Airflow-Dag-Bundle
// header (already checked against its grant), a task token's the team of
// its DAG's bundle. Outside multi_team, and for a component token (which
// is no task and belongs to no bundle), it is "": no team, which Airflow
// lets read every variable and connection.
func (s *Server) requestTeam(c echo.Context) (string, error) {
	claims := claimsOf(c)
	if !s.cfg.MultiTeam || claims == nil || claims.Component() != "" {
		return "", nil
	}
	ctx := c.Request().Context()
	if claims.Type() == scopes.DagProcessor {
		return s.cfg.Teams.BundleTeam(ctx, c.Request().Header.Get(scopes.BundleHeader))
	}
	return s.cfg.Teams.TaskInstanceTeam(ctx, claims.Subject)
}

// teamAccess is Airflow's has_variable_access and has_connection_access:
// a token of a team may not touch a record of another team (403 "Task does
// not have access to {kind} {id}"); a token of no team, and an unteamed
// record, pass. recordTeam reads the record's team only when the token
// has one.
func teamAccess(ctx context.Context, team, kind, id string, recordTeam func(context.Context, string) (string, error)) error {
	if team == "" {
		return nil
	}
	owner, err := recordTeam(ctx, id)
	if err != nil {
		return err
	}
	if owner != "" && owner != team {
		return &APIError{Status: http.StatusForbidden, Detail: "Task does not have access to " + kind + " " + id}
	}
	return nil
}

// variableTeam resolves the request's team and checks its access to the
// variable key.
func (s *Server) variableTeam(c echo.Context, key string) (string, error) {
	team, err := s.requestTeam(c)
	if err != nil || team == "" {
		return team, err
	}
	return team, teamAccess(c.Request().Context(), team, "variable", key, s.cfg.Teams.VariableTeam)
}

// connectionTeam resolves the request's team and checks its access to the
// connection id.
func (s *Server) connectionTeam(c echo.Context, id string) (string, error) {
	team, err := s.requestTeam(c)
	if err != nil || team == "" {
		return team, err
	}
	return team, teamAccess(c.Request().Context(), team, "connection", id, s.cfg.Teams.ConnectionTeam)
}
