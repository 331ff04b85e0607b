package workload

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestEnvSecretsVariable(t *testing.T) {
	e := NewEnvSecrets([]string{"AIRFLOW_VAR_KEY1=VALUE", "AIRFLOW_VAR_lower=x", "AIRFLOW_VAR_EMPTY=",
		"AIRFLOW_VAR_A/B=slash", "AIRFLOW_VAR_STRASSE=ss", "AIRFLOW_VAR_DUP=1", "AIRFLOW_VAR_DUP=2", "OTHER=1"})
	tests := []struct {
		key, want string
		found     bool
	}{
		{"key1", "VALUE", true},
		{"Key1", "VALUE", true},
		{"KEY1", "VALUE", true},
		{"lower", "", false}, // Airflow upper-cases the key; the variable's name is case-sensitive
		{"empty", "", true},
		{"a/b", "slash", true},
		{"straße", "ss", true}, // Python's "ß".upper() is "SS"
		{"dup", "2", true},
		{"other", "", false},
	}
	for _, tt := range tests {
		got, found := e.Variable(tt.key)
		if got != tt.want || found != tt.found {
			t.Errorf("Variable(%q) = %q, %v; want %q, %v", tt.key, got, found, tt.want, tt.found)
		}
	}
	var none *EnvSecrets
	if _, ok := none.Variable("key1"); ok {
		t.Error("a nil EnvSecrets serves a variable")
	}
}

func TestEnvSecretsConnection(t *testing.T) {
	e := NewEnvSecrets([]string{"AIRFLOW_CONN_PG=postgres://h", "AIRFLOW_CONN_EMPTY=", "AIRFLOW_CONN_BAD=a://b://c://d://s3cr3t"})
	if c, err := e.Connection("pg"); err != nil || c == nil || c.ConnID != "pg" || c.ConnType != "postgres" {
		t.Errorf("Connection(pg) = %+v, %v", c, err)
	}
	if c, err := e.Connection("empty"); c != nil || err != nil {
		t.Errorf("an empty value is no connection: %+v, %v", c, err)
	}
	if c, err := e.Connection("missing"); c != nil || err != nil {
		t.Errorf("Connection(missing) = %+v, %v", c, err)
	}
	_, err := e.Connection("bad")
	if err == nil || !strings.Contains(err.Error(), "AIRFLOW_CONN_BAD") || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error %v: want the variable's name and never its value", err)
	}
}

// TestParseConnection holds the parser to what Airflow's Connection
// (models/connection.py: _parse_from_uri, from_json) makes of each value.
func TestParseConnection(t *testing.T) {
	tests := []struct {
		name, value string
		want        string // the connection as JSON, or "error"
	}{
		{"uri, every part", "postgres://user:pa%2Fss@db.Example:5432/my%20db?sslmode=require&x=a+b",
			`{"conn_id":"c","conn_type":"postgres","host":"db.example","schema":"my db","login":"user","password":"pa/ss","port":5432,"extra":"{\"sslmode\": \"require\", \"x\": \"a b\"}"}`},
		{"uri, host only", "postgresql://h",
			`{"conn_id":"c","conn_type":"postgres","host":"h","schema":"","login":null,"password":null,"port":null,"extra":null}`},
		{"uri, dashes in the type, __extra__", "google-cloud-platform://?__extra__=%7B%22a%22%3A+1%7D",
			`{"conn_id":"c","conn_type":"google_cloud_platform","host":"","schema":"","login":null,"password":null,"port":null,"extra":"{\"a\": 1}"}`},
		{"uri, escaped host with slashes", "http://https%3A%2F%2FExample.com",
			`{"conn_id":"c","conn_type":"http","host":"https://Example.com","schema":"","login":null,"password":null,"port":null,"extra":null}`},
		{"uri, host with protocol", "http://https://example.com:443/path",
			`{"conn_id":"c","conn_type":"http","host":"https://example.com","schema":"path","login":null,"password":null,"port":443,"extra":null}`},
		{"uri, '@' in the password", "x://u:p@ss@h",
			`{"conn_id":"c","conn_type":"x","host":"h","schema":"","login":"u","password":"p@ss","port":null,"extra":null}`},
		{"uri, empty login", "x://@h:1",
			`{"conn_id":"c","conn_type":"x","host":"h","schema":"","login":"","password":null,"port":1,"extra":null}`},
		{"uri, repeated and blank parameters", "x://h?a=1&b&a=2",
			`{"conn_id":"c","conn_type":"x","host":"h","schema":"","login":null,"password":null,"port":null,"extra":"{\"a\": \"2\", \"b\": \"\"}"}`},
		{"uri, upper-case scheme, surrounding spaces", "  HTTP://H  ",
			`{"conn_id":"c","conn_type":"http","host":"h","schema":"","login":null,"password":null,"port":null,"extra":null}`},
		{"json", `{"conn_type":"postgresql","host":"h","login":"l","password":"p","schema":"s","port":"5432","extra":{"b":[1,2.0],"é":true},"description":"d"}`,
			`{"conn_id":"c","conn_type":"postgres","host":"h","schema":"s","login":"l","password":"p","port":5432,"extra":"{\"b\": [1, 2.0], \"\\u00e9\": true}"}`},
		{"json, extra as a string, port a number", `{"conn_type":"x","port":8080,"extra":"{\"k\":1}"}`,
			`{"conn_id":"c","conn_type":"x","host":null,"schema":null,"login":null,"password":null,"port":8080,"extra":"{\"k\":1}"}`},
		{"json, falsy extra and port", `{"conn_type":"x","port":0,"extra":{}}`,
			`{"conn_id":"c","conn_type":"x","host":null,"schema":null,"login":null,"password":null,"port":null,"extra":null}`},
		{"json, uri", `{"uri":"mysql://u@h"}`,
			`{"conn_id":"c","conn_type":"mysql","host":"h","schema":"","login":"u","password":null,"port":null,"extra":null}`},
		{"three schemes", "a://b://c://d", "error"},
		{"protocol host with user info", "a://u:p@b://c", "error"},
		{"port out of range", "x://h:65536", "error"},
		{"port not a number", "x://h:8o", "error"},
		{"extra not an object", "x://h?__extra__=%5B1%5D", "error"},
		{"json without conn_type", `{"host":"h"}`, "error"},
		{"json, port not an integer", `{"conn_type":"x","port":"abc"}`, "error"},
		{"json, unknown member", `{"conn_type":"x","bogus":1}`, "error"},
		{"json, host not a string", `{"conn_type":"x","host":1}`, "error"},
		{"json, uri and fields", `{"conn_type":"x","uri":"a://b"}`, "error"},
		{"json, broken", `{"conn_type":`, "error"},
		{"blank", "   ", "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConnection("c", tt.value)
			if tt.want == "error" {
				if err == nil {
					t.Fatalf("got %+v, want an error", c)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(c)
			if string(b) != tt.want {
				t.Errorf("got  %s\nwant %s", b, tt.want)
			}
		})
	}
}

// FuzzParseConnection: any value parses or is refused without a panic, and
// a refusal never quotes the value, which is a secret.
func FuzzParseConnection(f *testing.F) {
	for _, s := range []string{"postgres://u:p@h:5432/s?a=b", "http://https://x:1/p", `{"conn_type":"x","extra":{"a":[1]}}`,
		`{"uri":"a://b"}`, "x://h?__extra__=%7B%7D", "a://b://c://d", "x://[::1]:80/", "%zz://%", `{"port":"1_0"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		c, err := ParseConnection("id", value)
		if err != nil {
			if len(value) >= 12 && strings.Contains(err.Error(), strings.TrimSpace(value)) {
				t.Errorf("the error %q quotes the value", err)
			}
			return
		}
		if c.ConnID != "id" {
			t.Errorf("conn_id %q", c.ConnID)
		}
		if _, err := json.Marshal(c); err != nil {
			t.Error(err)
		}
	})
}

// TestEnvSecretsTeams: under [core] multi_team a team reads its own
// AIRFLOW_VAR__{TEAM}___{KEY} first; a key shaped as a team's namespace is
// never read through AIRFLOW_VAR_{KEY}, for any team or none.
func TestEnvSecretsTeams(t *testing.T) {
	e := NewEnvSecrets([]string{
		"AIRFLOW_VAR__BLUE___KEY=blue's",
		"AIRFLOW_VAR_KEY=everyone's",
		"AIRFLOW_VAR__RED___EMPTY=",
		"AIRFLOW_VAR_EMPTY=fallback",
		"AIRFLOW_VAR__BLUE___SECRET=blue's secret",
		"AIRFLOW_VAR__X___NOT_A_TEAM=short name",
		"AIRFLOW_CONN__BLUE___DB=postgres://blue@db/blue",
		"AIRFLOW_CONN_DB=postgres://all@db/all",
	})
	for _, tc := range []struct {
		team, key string
		want      string
		ok        bool
	}{
		{"blue", "key", "blue's", true},
		{"red", "key", "everyone's", true},
		{"", "key", "everyone's", true},
		{"red", "empty", "fallback", true}, // an empty team value is none, as Airflow's walrus
		{"red", "_blue___secret", "", false},
		{"", "_blue___secret", "", false},
		{"blue", "_blue___secret", "", false},
		{"", "_x___not_a_team", "short name", true}, // "x" can be no team's name
	} {
		got, ok := e.VariableFor(tc.team, tc.key)
		if got != tc.want || ok != tc.ok {
			t.Errorf("VariableFor(%q, %q) = %q, %v; want %q, %v", tc.team, tc.key, got, ok, tc.want, tc.ok)
		}
	}
	for team, host := range map[string]string{"blue": "blue", "red": "all", "": "all"} {
		c, err := e.ConnectionFor(team, "db")
		if err != nil || c == nil || c.Login == nil || *c.Login != host {
			t.Errorf("ConnectionFor(%q, db) = %+v, %v; want login %s", team, c, err, host)
		}
	}
	if c, err := e.ConnectionFor("", "_blue___db"); c != nil || err != nil {
		t.Errorf("a namespaced connection id read through AIRFLOW_CONN_: %+v, %v", c, err)
	}
}
