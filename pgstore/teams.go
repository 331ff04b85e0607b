package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Airflow's teams (3.2, [core] multi_team): team names a team; a DAG bundle
// belongs to at most one (dag_bundle_team, unique on dag_bundle_name); a
// variable's or connection's team_name is its team, NULL for one every team
// may read. A task's team is its DAG's bundle's (get_team_name_dep joins
// task_instance → dag → dag_bundle → dag_bundle_team), a DAG processor's
// the team of the bundle it parses.

// TaskInstanceTeam is the team of the task instance's DAG's bundle, "" when
// the bundle has none or the task instance is unknown (Airflow's
// session.scalar then answers None).
func (db *DB) TaskInstanceTeam(ctx context.Context, tiID string) (string, error) {
	if !validUUID(tiID) {
		return "", nil
	}
	return db.team(ctx, "task instance "+tiID, `SELECT bt.team_name FROM task_instance ti
		JOIN dag d ON d.dag_id = ti.dag_id
		JOIN dag_bundle_team bt ON bt.dag_bundle_name = d.bundle_name
		WHERE ti.id = $1::uuid`, tiID)
}

// BundleTeam is the team of the DAG bundle, "" when it has none or is
// unknown.
func (db *DB) BundleTeam(ctx context.Context, bundle string) (string, error) {
	return db.team(ctx, "dag bundle "+bundle,
		`SELECT team_name FROM dag_bundle_team WHERE dag_bundle_name = $1`, bundle)
}

// VariableTeam is the variable's team_name, "" when it has none or the
// variable is unknown (Variable.get_team_name).
func (db *DB) VariableTeam(ctx context.Context, key string) (string, error) {
	return db.team(ctx, "variable "+key, `SELECT team_name FROM variable WHERE key = $1`, key)
}

// ConnectionTeam is the connection's team_name, "" when it has none or the
// connection is unknown (Connection.get_team_name).
func (db *DB) ConnectionTeam(ctx context.Context, id string) (string, error) {
	return db.team(ctx, "connection "+id, `SELECT team_name FROM connection WHERE conn_id = $1`, id)
}

// team runs a query of one nullable team name; no row and NULL are "".
func (db *DB) team(ctx context.Context, what, sql string, arg string) (string, error) {
	var name *string
	err := db.pool.QueryRow(ctx, sql, arg).Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && name == nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("pgstore: team of %s: %w", what, classify(err))
	}
	return *name, nil
}
