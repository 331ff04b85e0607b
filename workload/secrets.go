package workload

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/taskgate/taskgate/internal/pyjson"
)

// Airflow's default secrets backend, EnvironmentVariablesBackend
// (airflow-core/src/airflow/secrets/environment_variables.py), is consulted
// before the metadata database: a variable is read from AIRFLOW_VAR_{KEY}
// and a connection from AIRFLOW_CONN_{CONN_ID}, the key or id upper-cased.
// A value found there wins over the database; writes and deletes only ever
// reach the database, so an environment-defined key keeps reading its
// environment value.
const (
	VariableEnvPrefix   = "AIRFLOW_VAR_"
	ConnectionEnvPrefix = "AIRFLOW_CONN_"
)

// EnvSecrets serves variables and connections from environment variables as
// Airflow's EnvironmentVariablesBackend does. Its values are secrets: no
// method returns an error that holds one, so callers may log its errors.
type EnvSecrets struct {
	env map[string]string
}

// NewEnvSecrets keeps the AIRFLOW_VAR_ and AIRFLOW_CONN_ entries of environ
// ("KEY=VALUE" entries as os.Environ returns them; a later entry for the same
// name wins).
func NewEnvSecrets(environ []string) *EnvSecrets {
	e := &EnvSecrets{env: map[string]string{}}
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if ok && (strings.HasPrefix(name, VariableEnvPrefix) || strings.HasPrefix(name, ConnectionEnvPrefix)) {
			e.env[name] = value
		}
	}
	return e
}

// envName is the variable Airflow reads for key: the prefix and Python's
// str.upper() of the key (its one-to-many mapping of ß included).
func envName(prefix, key string) string {
	return prefix + strings.ReplaceAll(strings.ToUpper(key), "ß", "SS")
}

// Variable returns the value of AIRFLOW_VAR_{KEY}, and whether it is set.
// An empty value is a value, as os.environ.get returns it.
func (e *EnvSecrets) Variable(key string) (string, bool) { return e.VariableFor("", key) }

// VariableFor is Variable as a task of team reads it under [core]
// multi_team: AIRFLOW_VAR__{TEAM}___{KEY} when it is set and not empty,
// else AIRFLOW_VAR_{KEY}. A key shaped as a team's namespace
// (_{team}___{rest}) is not read through AIRFLOW_VAR_{KEY}, for any team
// or none: that name is the namespaced variable of the team it spells.
func (e *EnvSecrets) VariableFor(team, key string) (string, bool) {
	if e == nil {
		return "", false
	}
	if team != "" {
		if v := e.env[teamEnvName(VariableEnvPrefix, team, key)]; v != "" {
			return v, true
		}
	}
	if namesTeamNamespace(key) {
		return "", false
	}
	v, ok := e.env[envName(VariableEnvPrefix, key)]
	return v, ok
}

// teamEnvName is the variable Airflow reads for team's key:
// {prefix}_{TEAM}___{KEY}.
func teamEnvName(prefix, team, key string) string {
	return envName(prefix+"_"+strings.ToUpper(team)+teamSeparator, key)
}

// teamSeparator separates the team from the id in a team's namespaced
// environment variable.
const teamSeparator = "___"

// namesTeamNamespace reports whether id is shaped as a team's namespace:
// "_", a possible team name (3 to 50 of [a-zA-Z0-9-], as `airflow teams
// create` accepts), "___" and at least one more character, as Airflow's
// EnvironmentVariablesBackend._names_a_team_namespace.
func namesTeamNamespace(id string) bool {
	rest, ok := strings.CutPrefix(id, "_")
	if !ok {
		return false
	}
	team, tail, ok := strings.Cut(rest, teamSeparator)
	if !ok || tail == "" || strings.Contains(tail, "\n") || len(team) < 3 || len(team) > 50 {
		return false
	}
	for _, r := range team {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// HasVariable reports whether AIRFLOW_VAR_{KEY} is set.
func (e *EnvSecrets) HasVariable(key string) bool {
	_, ok := e.Variable(key)
	return ok
}

// Connection returns the connection AIRFLOW_CONN_{CONN_ID} describes, in
// Airflow's URI or JSON form, or nil when the variable is unset or empty.
// A value that does not parse gives an error (naming the variable, never
// its value): Airflow then skips the backend and reads the database.
func (e *EnvSecrets) Connection(id string) (*Connection, error) { return e.ConnectionFor("", id) }

// ConnectionFor is Connection as a task of team reads it under [core]
// multi_team: AIRFLOW_CONN__{TEAM}___{CONN_ID} when it is set and not
// empty, else AIRFLOW_CONN_{CONN_ID}, which an id shaped as a team's
// namespace never reads (VariableFor).
func (e *EnvSecrets) ConnectionFor(team, id string) (*Connection, error) {
	if e == nil {
		return nil, nil
	}
	name := ""
	if team != "" {
		if n := teamEnvName(ConnectionEnvPrefix, team, id); e.env[n] != "" {
			name = n
		}
	}
	if name == "" {
		if namesTeamNamespace(id) {
			return nil, nil
		}
		name = envName(ConnectionEnvPrefix, id)
	}
	v := e.env[name]
	if v == "" {
		return nil, nil
	}
	c, err := ParseConnection(id, v)
	if err != nil {
		return nil, &EnvSecretError{Name: name, Problem: err.Error()}
	}
	return c, nil
}

// EnvSecretError is an environment variable that does not describe a
// connection. It names the variable and the problem, never the value.
type EnvSecretError struct {
	Name, Problem string
}

func (e *EnvSecretError) Error() string {
	return e.Name + " is not a connection in Airflow's URI or JSON form: " + e.Problem
}

// ParseConnection reads a serialized connection as Airflow's secrets
// backends do (BaseSecretsBackend.deserialize_connection): trimmed, a value
// starting with '{' is Connection.from_json's JSON, anything else
// Connection's URI. Errors never quote the value.
func ParseConnection(id, value string) (*Connection, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return nil, errors.New("empty")
	}
	if value[0] == '{' {
		return connectionFromJSON(id, value)
	}
	return connectionFromURI(id, value)
}

// connectionFromJSON is Connection.from_json: the members conn_type,
// description, host, login, password, schema, port, extra (an object is
// serialized as json.dumps does) and uri; a falsy extra, conn_type or port
// is as if absent.
func connectionFromJSON(id, value string) (*Connection, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(value), &m); err != nil {
		return nil, errors.New("not a JSON object")
	}
	c := &Connection{ConnID: id}
	var uri *string
	hasFields := false
	for k, raw := range m {
		if pyFalsy(raw) && (k == "extra" || k == "conn_type" || k == "port") {
			continue
		}
		switch k {
		case "conn_type":
			s, err := jsonString(k, raw)
			if err != nil {
				return nil, err
			}
			c.ConnType = normalizeConnType(*s)
			hasFields = true
		case "host", "login", "password", "schema", "uri", "description", "team_name":
			if string(raw) == "null" {
				continue
			}
			s, err := jsonString(k, raw)
			if err != nil {
				return nil, err
			}
			switch k {
			case "host":
				c.Host = s
			case "login":
				c.Login = s
			case "password":
				c.Password = s
			case "schema":
				c.Schema = s
			case "uri":
				uri = s
				continue
			case "description", "team_name":
				continue
			}
			if *s != "" {
				hasFields = true
			}
		case "port":
			p, err := pyInt(raw)
			if err != nil {
				return nil, err
			}
			c.Port = &p
			hasFields = true
		case "extra":
			var s string
			if raw[0] == '"' {
				_ = json.Unmarshal(raw, &s)
			} else {
				d, err := pyjson.Dumps(raw, false)
				if err != nil {
					return nil, errors.New("extra is not JSON")
				}
				s = d
			}
			c.Extra = &s
			hasFields = true
		default:
			// The member's name is part of the secret value: not quoted.
			return nil, errors.New("a member other than conn_type, description, host, login, password, " +
				"schema, port, extra, uri and team_name")
		}
	}
	if uri != nil && *uri != "" {
		if hasFields {
			return nil, errors.New("uri cannot be combined with conn_type, host, login, password, schema, port or extra")
		}
		return connectionFromURI(id, *uri)
	}
	if c.ConnType == "" {
		return nil, errors.New("conn_type is required")
	}
	if err := checkExtra(c.Extra); err != nil {
		return nil, err
	}
	return c, nil
}

func jsonString(name string, raw json.RawMessage) (*string, error) {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return nil, errors.New(name + " is not a string")
	}
	return &s, nil
}

// pyFalsy reports whether a JSON value is false in Python: null, false, 0,
// "", [] or {}.
func pyFalsy(raw json.RawMessage) bool {
	switch s := strings.TrimSpace(string(raw)); s {
	case "null", "false", `""`, "[]", "{}":
		return true
	default:
		if f, err := strconv.ParseFloat(s, 64); err == nil && f == 0 {
			return true
		}
		var x any
		if s != "" && (s[0] == '[' || s[0] == '{') && json.Unmarshal(raw, &x) == nil {
			switch v := x.(type) {
			case []any:
				return len(v) == 0
			case map[string]any:
				return len(v) == 0
			}
		}
		return false
	}
}

// pyInt is Python's int() of a JSON port: an integer, a float truncated,
// true, or a string of decimal digits (sign, surrounding spaces and
// underscores between digits allowed).
func pyInt(raw json.RawMessage) (int, error) {
	bad := errors.New("port is not an integer")
	switch {
	case string(raw) == "true":
		return 1, nil
	case raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, bad
		}
		s = strings.TrimSpace(s)
		if strings.HasPrefix(s, "_") || strings.HasSuffix(s, "_") || strings.Contains(s, "__") {
			return 0, bad
		}
		n, err := strconv.Atoi(strings.ReplaceAll(s, "_", ""))
		if err != nil {
			return 0, bad
		}
		return n, nil
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f > 1<<53 || f < -(1<<53) {
		return 0, bad
	}
	return int(f), nil
}

// normalizeConnType is Connection._normalize_conn_type.
func normalizeConnType(t string) string {
	if t == "postgresql" {
		return "postgres"
	}
	return strings.ReplaceAll(t, "-", "_")
}

// checkExtra is Connection._validate_extra: extra must be a JSON object.
func checkExtra(extra *string) error {
	if extra == nil || *extra == "" {
		return nil
	}
	var m map[string]json.RawMessage
	if s := strings.TrimSpace(*extra); s == "" || s[0] != '{' || json.Unmarshal([]byte(s), &m) != nil {
		return errors.New("extra is not a JSON object")
	}
	return nil
}

// connectionFromURI is Connection._parse_from_uri: the scheme is the type
// (normalized), a second "scheme://" keeps its protocol on the host, the
// path is the schema, user info the login and password, the query the
// extra (its __extra__ parameter verbatim, or every parameter as a JSON
// object). Host and schema are "" rather than null when absent, as
// Airflow's parser leaves them.
func connectionFromURI(id, uri string) (*Connection, error) {
	invalid := errors.New("invalid connection URI")
	n := strings.Count(uri, "://")
	if n > 2 {
		return nil, invalid
	}
	withProtocol := n == 2
	scheme, _, _, _ := urlSplit(uri)
	rest := uri
	if withProtocol {
		rest = strings.ReplaceAll(uri, scheme+"://", "")
		first, _, _ := strings.Cut(rest, "://")
		if strings.ContainsAny(first, "@:") {
			return nil, invalid
		}
	} else {
		rest = strings.ReplaceAll(uri, scheme+"://", "//")
	}
	proto, netloc, path, query := urlSplit(rest)
	c := &Connection{ConnID: id, ConnType: normalizeConnType(scheme)}

	hostinfo := netloc
	if i := strings.LastIndexByte(netloc, '@'); i >= 0 {
		userinfo := netloc[:i]
		hostinfo = netloc[i+1:]
		user, pass, hasPass := strings.Cut(userinfo, ":")
		u := pyUnquote(user)
		c.Login = &u
		if hasPass {
			p := pyUnquote(pass)
			c.Password = &p
		}
	}
	hostname, portText, hasPort := splitHostPort(hostinfo)
	host := pyUnquote(strings.ToLower(hostname))
	if strings.Contains(host, "/") {
		// _parse_netloc_to_hostname: a host holding '/' is taken from
		// the netloc as written, not lower-cased.
		h := netloc
		if i := strings.LastIndexByte(h, '@'); i >= 0 {
			h = h[i+1:]
		}
		h, _, _ = strings.Cut(h, ":")
		host = pyUnquote(h)
	}
	if withProtocol && host != "" {
		host = proto + "://" + host
	}
	c.Host = &host
	schema := ""
	if len(path) > 1 {
		schema = pyUnquote(path[1:])
	}
	c.Schema = &schema
	if hasPort && portText != "" {
		p, err := strconv.Atoi(portText)
		if err != nil || strings.ContainsAny(portText, "+-") || p > 65535 {
			return nil, errors.New("port is not an integer from 0 to 65535")
		}
		c.Port = &p
	}
	if query != "" {
		keys, values := parseQSL(query)
		if v, ok := values["__extra__"]; ok {
			c.Extra = &v
		} else {
			var b []byte
			b = append(b, '{')
			for i, k := range keys {
				if i > 0 {
					b = append(b, ',')
				}
				kb, _ := json.Marshal(k)
				vb, _ := json.Marshal(values[k])
				b = append(append(append(b, kb...), ':'), vb...)
			}
			b = append(b, '}')
			d, err := pyjson.Dumps(b, false)
			if err != nil {
				return nil, invalid
			}
			c.Extra = &d
		}
		if err := checkExtra(c.Extra); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// urlSplit is Python's urllib.parse.urlsplit: the scheme (lower-cased),
// the network location, the path and the query; the fragment is dropped.
func urlSplit(s string) (scheme, netloc, path, query string) {
	s = strings.TrimLeft(s, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f ")
	s = strings.NewReplacer("\t", "", "\r", "", "\n", "").Replace(s)
	if i := strings.IndexByte(s, ':'); i > 0 && isASCIILetter(s[0]) && isSchemeText(s[:i]) {
		scheme, s = strings.ToLower(s[:i]), s[i+1:]
	}
	if strings.HasPrefix(s, "//") {
		end := len(s)
		if i := strings.IndexAny(s[2:], "/?#"); i >= 0 {
			end = i + 2
		}
		netloc, s = s[2:end], s[end:]
	}
	s, _, _ = strings.Cut(s, "#")
	s, query, _ = strings.Cut(s, "?")
	return scheme, netloc, s, query
}

func isASCIILetter(b byte) bool { return (b|0x20) >= 'a' && (b|0x20) <= 'z' }

func isSchemeText(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !isASCIILetter(b) && (b < '0' || b > '9') && b != '+' && b != '-' && b != '.' {
			return false
		}
	}
	return true
}

// splitHostPort splits urlsplit's host part: "[v6]:port" or "host:port".
func splitHostPort(hostinfo string) (host, port string, hasPort bool) {
	if strings.HasPrefix(hostinfo, "[") {
		inside, after, _ := strings.Cut(hostinfo[1:], "]")
		_, port, hasPort = strings.Cut(after, ":")
		return inside, port, hasPort
	}
	return strings.Cut(hostinfo, ":")
}

// parseQSL is parse_qsl(query, keep_blank_values=True) gathered into a
// dict: '&'-separated pairs, '+' as a space, %-escapes decoded; a repeated
// name keeps its first place and its last value.
func parseQSL(q string) (keys []string, values map[string]string) {
	values = map[string]string{}
	for _, part := range strings.Split(q, "&") {
		if part == "" {
			continue
		}
		name, value, _ := strings.Cut(part, "=")
		name = pyUnquote(strings.ReplaceAll(name, "+", " "))
		value = pyUnquote(strings.ReplaceAll(value, "+", " "))
		if _, seen := values[name]; !seen {
			keys = append(keys, name)
		}
		values[name] = value
	}
	return keys, values
}

// pyUnquote is urllib.parse.unquote: %XX escapes decoded as UTF-8 (an
// invalid sequence becomes U+FFFD), a '%' not followed by two hex digits
// kept as it is.
func pyUnquote(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b = append(b, byte(v))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

func isHex(b byte) bool {
	return (b >= '0' && b <= '9') || ((b|0x20) >= 'a' && (b|0x20) <= 'f')
}
