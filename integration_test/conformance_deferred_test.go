package integration_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/taskgate/taskgate/fernet"
	"github.com/taskgate/taskgate/internal/pgtest"
	"github.com/taskgate/taskgate/store"
)

// Airflow's TestTIUpdateState::test_ti_update_state_to_deferred: the
// worker's trigger kwargs and next kwargs, both already serialized by the
// Task SDK (airflow.sdk.serde), are kept as Airflow's route keeps them, and
// the trigger times out a day after it was created.

// deferredTriggerKwargs and deferredNextKwargs are the case's payload: a
// datetime moment of 2024-12-18T00:00:01Z and next kwargs
// serialize({"foo": datetime(2024, 12, 18, tzinfo=utc), "bar": "abc"}).
const (
	deferredTriggerKwargs = `{"key":"value","moment":{"__classname__":"datetime.datetime","__version__":2,"__data__":{` +
		`"timestamp":1734480001.0,"tz":{"__classname__":"builtins.tuple","__version__":1,` +
		`"__data__":["UTC","pendulum.tz.timezone.Timezone",1,true]}}}}`
	deferredNextKwargs = `{"foo":{"__classname__":"datetime.datetime","__version__":2,"__data__":{` +
		`"timestamp":1734480000.0,"tz":{"__classname__":"builtins.tuple","__version__":1,` +
		`"__data__":["UTC","pendulum.tz.timezone.Timezone",1,true]}}},"bar":"abc"}`
	// deferredKwargsColumn is deferredTriggerKwargs as Python's json.dumps
	// writes it, which is what Airflow's route stores in trigger.kwargs.
	deferredKwargsColumn = `{"key": "value", "moment": {"__classname__": "datetime.datetime", "__version__": 2, ` +
		`"__data__": {"timestamp": 1734480001.0, "tz": {"__classname__": "builtins.tuple", "__version__": 1, ` +
		`"__data__": ["UTC", "pendulum.tz.timezone.Timezone", 1, true]}}}}`
	// triggerFernetKey is a fixed [core] fernet_key (the bytes 0…31) the
	// worker and Airflow's triggerer would share.
	triggerFernetKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
)

func deferredPayload(triggerKwargs string) string {
	return `{"state":"deferred","trigger_kwargs":` + triggerKwargs + `,"trigger_timeout":"P1D",` +
		`"classpath":"my-classpath","next_method":"execute_callback","next_kwargs":` + deferredNextKwargs + `}`
}

// decodeTriggerKwargsAsAirflow reads a trigger.kwargs column as Airflow's
// Trigger._decrypt_kwargs does before it deserializes it: JSON when it
// starts with "{", else Fernet-decrypted with the key first.
func decodeTriggerKwargsAsAirflow(t *testing.T, column, key string) any {
	t.Helper()
	plain := []byte(column)
	if !strings.HasPrefix(column, "{") {
		f, err := fernet.NewMulti(key)
		if err != nil {
			t.Fatal(err)
		}
		if plain, err = f.Decrypt(column); err != nil {
			t.Fatalf("Fernet decrypt %q: %v", column, err)
		}
	}
	var v any
	if err := json.Unmarshal(plain, &v); err != nil {
		t.Fatalf("json.loads %q: %v", plain, err)
	}
	return v
}

func jsonValue(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return v
}

func TestConformanceDeferredPostgres(t *testing.T) {
	d := newPGDeployment(t)
	srv := d.startReplica(t, noAuthLimit)
	m := d.minter(t)
	key, err := fernet.NewMulti(triggerFernetKey)
	if err != nil {
		t.Fatal(err)
	}
	encrypted, err := key.Encrypt([]byte(deferredTriggerKwargs))
	if err != nil {
		t.Fatal(err)
	}
	quoted, _ := json.Marshal(encrypted)
	for _, c := range []struct {
		name, sent, column string
	}{
		{"test_task_instances.py::TestTIUpdateState::test_ti_update_state_to_deferred", deferredTriggerKwargs, deferredKwargsColumn},
		{"deferred: kwargs the worker encrypted are stored verbatim", string(quoted), encrypted},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := d.af.DagRun(t, pgtest.DagRunRow{DagID: "deferred_dag", RunID: "run_" + pgtest.UUIDv7()})
			ti := d.af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: r.DagID, RunID: r.RunID,
				TaskID: "test_ti_update_state_to_deferred", State: "running", Hostname: "random-hostname", PID: ptrInt(1)})
			before := time.Now().Add(-time.Second)
			wantNoContent(t, newWorker(t, srv.URL, m.execution(ti.ID)).do("PATCH", tiPath(ti.ID, "state"),
				deferredPayload(c.sent)), 204)
			after := time.Now().Add(time.Second)
			var (
				state, nextMethod, nextKwargs, classpath, column string
				timeout, created                                 time.Time
			)
			d.queryRow(`SELECT ti.state, ti.next_method, ti.next_kwargs::text, ti.trigger_timeout,
					tr.classpath, tr.kwargs, tr.created_date
				FROM task_instance ti JOIN trigger tr ON tr.id = ti.trigger_id WHERE ti.id = $1::uuid`,
				[]any{ti.ID}, &state, &nextMethod, &nextKwargs, &timeout, &classpath, &column, &created)
			if state != "deferred" || nextMethod != "execute_callback" || classpath != "my-classpath" {
				t.Errorf("state %s, next_method %s, classpath %s", state, nextMethod, classpath)
			}
			if !reflect.DeepEqual(jsonValue(t, nextKwargs), jsonValue(t, deferredNextKwargs)) {
				t.Errorf("next_kwargs %s, want %s", nextKwargs, deferredNextKwargs)
			}
			// Airflow reads the clock for the timeout, then again for the
			// trigger's created_date; its test freezes time to make them
			// one instant.
			if skew := timeout.Sub(created.Add(24 * time.Hour)); created.Before(before) || created.After(after) ||
				skew > time.Second || skew < -time.Second {
				t.Errorf("trigger created %v, timeout %v: want now and a day later", created, timeout)
			}
			if column != c.column {
				t.Errorf("trigger.kwargs\n got %s\nwant %s", column, c.column)
			}
			if got := decodeTriggerKwargsAsAirflow(t, column, triggerFernetKey); !reflect.DeepEqual(got,
				jsonValue(t, deferredTriggerKwargs)) {
				t.Errorf("Airflow's triggerer reads %v", got)
			}
		})
	}
}

// The embedded store keeps the deferral on the task instance (it has no
// triggerer and no trigger table): the kwargs as the worker sent them.
func TestConformanceDeferredEmbedded(t *testing.T) {
	dataDir := newDataDir(t)
	q := queueTask(t, dataDir, "dag", "test", "test_ti_update_state_to_deferred")
	srv := startServer(t, dataDir, noAuthLimit)
	var before, after time.Time
	t.Run("test_task_instances.py::TestTIUpdateState::test_ti_update_state_to_deferred", func(t *testing.T) {
		w := newWorker(t, srv.URL, q.Token)
		mustStatus(t, w.do("PATCH", tiPath(q.TIID, "run"), host{"random-hostname", "random-unixname", 1}.runPayload(t)), 200)
		before = time.Now().Add(-time.Second)
		wantNoContent(t, w.do("PATCH", tiPath(q.TIID, "state"), deferredPayload(deferredTriggerKwargs)), 204)
		after = time.Now().Add(time.Second)
	})
	srv.stop()
	db, err := store.Open(filepath.Join(dataDir, "taskgate.db"), store.Options{OpenTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ti, err := db.TaskInstance(context.Background(), q.TIID)
	if err != nil {
		t.Fatal(err)
	}
	if ti.State != "deferred" || ti.NextMethod == nil || *ti.NextMethod != "execute_callback" || ti.TriggerClass != "my-classpath" {
		t.Errorf("deferred task instance %+v", ti)
	}
	if !reflect.DeepEqual(jsonValue(t, string(ti.NextKwargs)), jsonValue(t, deferredNextKwargs)) ||
		!reflect.DeepEqual(jsonValue(t, string(ti.TriggerKwargs)), jsonValue(t, deferredTriggerKwargs)) {
		t.Errorf("kwargs: next %s, trigger %s", ti.NextKwargs, ti.TriggerKwargs)
	}
	if ti.TriggerTimeout == nil || ti.TriggerTimeout.Before(before.Add(24*time.Hour)) || ti.TriggerTimeout.After(after.Add(24*time.Hour)) {
		t.Errorf("trigger_timeout %v: want a day from now", ti.TriggerTimeout)
	}
}
