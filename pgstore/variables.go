package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/workload"
)

// Airflow's variable table (airflow/models/variable.py): key unique, val
// text NOT NULL holding the value or, when is_encrypted, its Fernet token;
// description; team_name, which taskgate leaves as it finds it.

// nullVariable is what a variable set to null holds: Airflow's
// Variable.set stores str(value), and str(None) is "None" (val is NOT NULL
// since 3.2).
const nullVariable = "None"

// Variable returns the variable, decrypted, or an error wrapping
// workload.ErrNotFound.
func (db *DB) Variable(ctx context.Context, key string) (*workload.Variable, error) {
	var (
		val, desc *string
		enc       bool
	)
	err := db.pool.QueryRow(ctx,
		`SELECT val, description, is_encrypted FROM variable WHERE key = $1`, key).Scan(&val, &desc, &enc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("pgstore: variable %s: %w", key, workload.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: variable %s: %w", key, classify(err))
	}
	return db.openVariable(key, val, desc, enc)
}

// openVariable builds a variable from its columns (copied: a row scan may
// reuse them), decrypting val when is_encrypted says it is a token (get_val:
// a non-null val with the flag).
func (db *DB) openVariable(key string, val, desc *string, enc bool) (*workload.Variable, error) {
	v := &workload.Variable{Key: key, Value: clone(val), Description: clone(desc)}
	if val != nil && enc {
		plain, err := db.decrypt("variable "+key, *val)
		if err != nil {
			return nil, err
		}
		v.Value = &plain
	}
	return v, nil
}

// PutVariable stores v as Airflow's Variable.set does: an upsert on key of
// val (encrypted with the fernet_key when one is configured, is_encrypted
// saying which), description and is_encrypted; team_name is kept. A nil
// value is stored as Airflow stores None, the text "None".
func (db *DB) PutVariable(ctx context.Context, v workload.Variable) error {
	return db.putVariable(ctx, v, false, "")
}

// PutTeamVariable stores v as Airflow's Variable.set does under [core]
// multi_team for a task of team (the writer's team, "" for none): as
// PutVariable, and team_name set to team, NULL for none, whatever it was.
func (db *DB) PutTeamVariable(ctx context.Context, v workload.Variable, team string) error {
	return db.putVariable(ctx, v, true, team)
}

// putVariable is PutVariable, setting team_name to team (NULL for "")
// when setTeam, else keeping it.
func (db *DB) putVariable(ctx context.Context, v workload.Variable, setTeam bool, team string) error {
	plain := nullVariable
	if v.Value != nil {
		plain = *v.Value
	}
	val, enc, err := db.encrypt("variable "+v.Key, plain)
	if err != nil {
		return err
	}
	err = db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		var teamName *string
		if team != "" {
			teamName = &team
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO variable (key, val, description, is_encrypted, team_name) VALUES ($1, $2, $3, $4, $6)
			ON CONFLICT (key) DO UPDATE
			SET val = EXCLUDED.val, description = EXCLUDED.description, is_encrypted = EXCLUDED.is_encrypted,
			    team_name = CASE WHEN $5 THEN EXCLUDED.team_name ELSE variable.team_name END`,
			v.Key, val, v.Description, enc, setTeam, teamName)
		return err
	})
	if err != nil {
		return fmt.Errorf("pgstore: put variable %s: %w", v.Key, err)
	}
	return nil
}

// DeleteVariable removes the variable; a missing key is not an error, so a
// retried delete succeeds.
func (db *DB) DeleteVariable(ctx context.Context, key string) error {
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM variable WHERE key = $1`, key)
		return err
	})
	if err != nil {
		return fmt.Errorf("pgstore: delete variable %s: %w", key, err)
	}
	return nil
}

// DeleteTeamVariable removes the variable as Airflow's Variable.delete
// does under [core] multi_team for a task of team: only when its team_name
// is team or NULL (for team "", only when NULL, as SQL's team_name = NULL
// matches nothing). A variable of another team, or none, is not an error.
func (db *DB) DeleteTeamVariable(ctx context.Context, key, team string) error {
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM variable WHERE key = $1 AND (team_name = $2 OR team_name IS NULL)`, key, team)
		return err
	})
	if err != nil {
		return fmt.Errorf("pgstore: delete variable %s: %w", key, err)
	}
	return nil
}

// VariableKeys lists the keys starting with prefix in byte order, skipping
// offset and returning at most limit (zero or negative: no limit), with the
// total number of keys matching prefix, both from one snapshot. keys is
// never nil.
func (db *DB) VariableKeys(ctx context.Context, prefix string, limit, offset int) (keys []string, total int, err error) {
	return db.variableKeys(ctx, nil, prefix, limit, offset)
}

// TeamVariableKeys is VariableKeys over the variables a task of team may
// read under [core] multi_team: its team's and the unteamed.
func (db *DB) TeamVariableKeys(ctx context.Context, team, prefix string, limit, offset int) (keys []string, total int, err error) {
	return db.variableKeys(ctx, &team, prefix, limit, offset)
}

// variableKeys is VariableKeys, limited to team's and unteamed variables
// when team is not nil.
func (db *DB) variableKeys(ctx context.Context, team *string, prefix string, limit, offset int) (keys []string, total int, err error) {
	var lim *int64
	if limit > 0 {
		l := int64(limit)
		lim = &l
	}
	err = db.pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM variable WHERE starts_with(key, $1)
		            AND ($4::text IS NULL OR team_name IS NULL OR team_name = $4)),
		       ARRAY(SELECT key FROM variable WHERE starts_with(key, $1)
		             AND ($4::text IS NULL OR team_name IS NULL OR team_name = $4)
		             ORDER BY key COLLATE "C" LIMIT $2 OFFSET $3)`,
		prefix, lim, int64(max(offset, 0)), team).Scan(&total, &keys)
	if err != nil {
		return nil, 0, fmt.Errorf("pgstore: variable keys: %w", classify(err))
	}
	if keys == nil {
		keys = []string{}
	}
	return keys, total, nil
}

// ListVariables returns every variable, decrypted, in key byte order. The
// result is never nil. A variable that cannot be decrypted fails the whole
// list with an error naming it (wrapping ErrDecrypt) rather than being left
// out silently.
func (db *DB) ListVariables(ctx context.Context) ([]workload.Variable, error) {
	rows, err := db.pool.Query(ctx,
		`SELECT key, val, description, is_encrypted FROM variable ORDER BY key COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("pgstore: list variables: %w", classify(err))
	}
	out := []workload.Variable{}
	var (
		key       string
		val, desc *string
		enc       bool
	)
	_, err = pgx.ForEachRow(rows, []any{&key, &val, &desc, &enc}, func() error {
		v, err := db.openVariable(key, val, desc, enc)
		if err != nil {
			return err
		}
		out = append(out, *v)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: list variables: %w", classify(err))
	}
	return out, nil
}

// clone copies a nullable column value.
func clone[T any](p *T) *T {
	if p == nil {
		return nil
	}
	c := *p
	return &c
}
