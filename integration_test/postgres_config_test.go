package integration_test

import (
	"testing"
)

// TestPostgresRefusedStarts: `taskgate serve` pointed at a database it
// cannot serve refuses to start with a short error saying why, and leaves
// Airflow's schema as it found it.
func TestPostgresRefusedStarts(t *testing.T) {
	d := newPGDeployment(t)
	tables := func() int {
		var n int
		d.queryRow(`SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'`, nil, &n)
		return n
	}
	before := tables()

	t.Run("an alembic revision it was not built for", func(t *testing.T) {
		d.exec(`UPDATE alembic_version SET version_num = 'ffffffffffff'`)
		defer d.exec(`UPDATE alembic_version SET version_num = '1d6611b6ab7c'`)
		f := serveMustFail(t, newDataDir(t), nil, d.env()...)
		wantClearError(t, "unsupported revision", f, "ffffffffffff", "1d6611b6ab7c")
	})

	t.Run("MySQL", func(t *testing.T) {
		env := append(d.env(), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=mysql+mysqldb://airflow:airflow@127.0.0.1/airflow")
		f := serveMustFail(t, newDataDir(t), nil, env...)
		wantClearError(t, "MySQL URL", f, "not supported")
	})

	t.Run("SQLite", func(t *testing.T) {
		env := append(d.env(), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=sqlite:////opt/airflow/airflow.db")
		f := serveMustFail(t, newDataDir(t), nil, env...)
		wantClearError(t, "SQLite URL", f, "not supported")
	})

	if after := tables(); after != before {
		t.Errorf("Airflow's schema holds %d tables after the refused starts, %d before", after, before)
	}
	// The database still serves once the revision is right again.
	d.startReplica(t).stop()
}
