package pgstore

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/taskgate/taskgate/fernet"
)

// testFernetKey is a fixed [core] fernet_key (the bytes 0…31).
const testFernetKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// airflowTriggerKwargs decodes a trigger.kwargs column as Airflow's
// Trigger._decrypt_kwargs does before it deserializes the result: a column
// that starts with "{" is JSON as it is, any other is decrypted with the
// Fernet key first.
func airflowTriggerKwargs(t *testing.T, column, key string) any {
	t.Helper()
	plain := []byte(column)
	if !strings.HasPrefix(column, "{") {
		f, err := fernet.NewMulti(key)
		if err != nil {
			t.Fatal(err)
		}
		if plain, err = f.Decrypt(column); err != nil {
			t.Fatalf("decrypt %q: %v", column, err)
		}
	}
	var v any
	if err := json.Unmarshal(plain, &v); err != nil {
		t.Fatalf("json.loads(%q): %v", plain, err)
	}
	return v
}

func TestTriggerKwargsColumnAsAirflowWritesIt(t *testing.T) {
	// test_ti_update_state_to_deferred's trigger_kwargs, as the Task SDK
	// serializes them (airflow.sdk.serde), sent without spaces.
	const serde = `{"key":"value","moment":{"__classname__":"datetime.datetime","__version__":2,"__data__":{` +
		`"timestamp":1734480001.0,"tz":{"__classname__":"builtins.tuple","__version__":1,` +
		`"__data__":["UTC","pendulum.tz.timezone.Timezone",1,true]}}}}`
	key, err := fernet.NewMulti(testFernetKey)
	if err != nil {
		t.Fatal(err)
	}
	encrypted, err := key.Encrypt([]byte(serde))
	if err != nil {
		t.Fatal(err)
	}
	quoted, _ := json.Marshal(encrypted)
	for _, c := range []struct {
		name, sent, column, decoded string
	}{
		{"serialized kwargs: json.dumps", serde,
			`{"key": "value", "moment": {"__classname__": "datetime.datetime", "__version__": 2, "__data__": {` +
				`"timestamp": 1734480001.0, "tz": {"__classname__": "builtins.tuple", "__version__": 1, ` +
				`"__data__": ["UTC", "pendulum.tz.timezone.Timezone", 1, true]}}}}`, serde},
		{"BaseSerialization kwargs, non-ASCII escaped",
			`{"__var":{"name":"café","n":1e6},"__type":"dict"}`,
			`{"__var": {"name": "caf\u00e9", "n": 1000000.0}, "__type": "dict"}`,
			`{"__var":{"name":"café","n":1000000.0},"__type":"dict"}`},
		{"kwargs the worker encrypted: verbatim", string(quoted), encrypted, serde},
		{"no kwargs", ``, `{}`, `{}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := triggerKwargsColumn(json.RawMessage(c.sent))
			if err != nil {
				t.Fatal(err)
			}
			if got != c.column {
				t.Errorf("column\n got %s\nwant %s", got, c.column)
			}
			var want any
			if err := json.Unmarshal([]byte(c.decoded), &want); err != nil {
				t.Fatal(err)
			}
			if dec := airflowTriggerKwargs(t, got, testFernetKey); !reflect.DeepEqual(dec, want) {
				t.Errorf("Airflow decodes %v, want %v", dec, want)
			}
		})
	}
}
