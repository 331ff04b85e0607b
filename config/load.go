package config

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Load merges built-in defaults, the INI file, AIRFLOW__SECTION__KEY
// environment variables and flags (later ones win) and validates the result.
//
// The file is src.File when given (it must exist). Otherwise, as Airflow
// does, it is $AIRFLOW_CONFIG when that is set, else $AIRFLOW_HOME/airflow.cfg
// when AIRFLOW_HOME is set — both read from src.Env, and used only if the
// file exists. Unlike Airflow, an unset AIRFLOW_HOME does not mean ~/airflow:
// a developer's personal Airflow installation must not leak into tests or
// into a gateway started on a fresh machine.
//
// File and environment values get Airflow's treatment: "%%" and "%(key)s"
// interpolation in the file, and $VAR/~ expansion (from src.Env) in both.
// Environment values are otherwise taken verbatim, so a secret keeps every
// byte. AIRFLOW__…_CMD variables and *_cmd file keys are run only for the
// sensitive keys taskgate reads (sql_alchemy_conn; see resolveSensitive);
// other *_CMD and *_SECRET variants are never executed or resolved and are
// listed in Config.Warnings.
//
// Unknown keys in Airflow's sections are ignored, since the file is usually a
// whole airflow.cfg. Unknown keys in taskgate's own [taskgate] section or
// AIRFLOW__TASKGATE__… variables, and unknown flags, are an
// *UnknownKeyError, because there a typo is certain to be a mistake.
// An invalid value is a *ValueError naming the key and its source.
func Load(src Sources) (*Config, error) {
	env := parseEnv(src.Env)
	defs := keyDefs()
	known := map[string]bool{}
	for _, d := range defs {
		known[d.Section+"."+d.Name] = true
	}

	for _, k := range slices.Sorted(maps.Keys(src.Flags)) {
		if !known[k] {
			return nil, &UnknownKeyError{Key: k, Source: "flag"}
		}
	}

	path, err := findFile(src.File, env)
	if err != nil {
		return nil, err
	}
	var file *iniFile
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: read config file: %w", err)
		}
		if file, err = parseINI(path, data); err != nil {
			return nil, err
		}
	}
	if err := checkTaskgateKeys(file, env, known); err != nil {
		return nil, err
	}

	c := &Config{Source: map[string]string{}, File: path}
	layers := map[string]layer{}
	byName := map[string]keyDef{}
	values := map[string]string{}
	for _, d := range defs {
		full := d.Section + "." + d.Name
		var l layer
		var value string
		if d.command {
			l, value, err = resolveSensitive(d, file, env, src)
		} else {
			l, value, err = resolve(d, file, env, src.Flags)
		}
		if err != nil {
			return nil, err
		}
		if err := d.set(c, value); err != nil {
			return nil, l.valueError(d, value, err.Error())
		}
		layers[full] = l
		byName[full] = d
		values[full] = value
		c.Source[full] = l.source
		if !d.command {
			c.Warnings = append(c.Warnings, ignoredIndirections(d, file, env)...)
		}
	}

	c.Warnings = append(c.Warnings, ignoredSecretsBackends(file, env)...)

	if c.JWTSecret != "" && c.JWTPrivateKeyPath != "" {
		secret := layers["api_auth.jwt_secret"]
		return nil, layers["api_auth.jwt_private_key_path"].valueError(byName["api_auth.jwt_private_key_path"], c.JWTPrivateKeyPath,
			fmt.Sprintf("cannot be combined with [api_auth] jwt_secret (from %s); set only one", secret.describe()))
	}
	for _, a := range c.APIAudiences {
		for _, e := range c.ExecutionAudiences {
			if a == e {
				return nil, layers["api_auth.jwt_audience"].valueError(byName["api_auth.jwt_audience"], strings.Join(c.APIAudiences, ","),
					fmt.Sprintf("shares %q with [execution_api] jwt_audience; REST and task tokens must not be interchangeable", a))
			}
		}
	}
	if c.MultiTeam && c.DatabaseURL == "" {
		return nil, layers["core.multi_team"].valueError(byName["core.multi_team"], values["core.multi_team"],
			"the embedded store has no teams, so taskgate cannot keep one team's tasks from another team's variables and connections; "+
				"set it to False, or serve Airflow's metadata database ([database] sql_alchemy_conn)")
	}
	if c.WorkloadTokenLifetime == 0 {
		c.WorkloadTokenLifetime = c.TaskQueuedTimeout
	}
	return c, nil
}

// layer says where a key's effective value came from.
type layer struct {
	source string // "default", "file", "env", "flag"
	origin string // "path:line", variable name or flag key; "" for defaults
}

func (l layer) describe() string {
	if l.origin == "" {
		return l.source
	}
	return l.source + " " + l.origin
}

func (l layer) valueError(d keyDef, value, reason string) *ValueError {
	if d.secret {
		value = "<redacted>"
	}
	return &ValueError{Section: d.Section, Name: d.Name, Value: value, Source: l.source, Origin: l.origin, Reason: reason}
}

// resolve picks the highest-precedence layer that sets d and returns its
// value after Airflow's interpolation and expansion. Lower layers are not
// looked at, so a broken value that is overridden does not stop start-up.
func resolve(d keyDef, file *iniFile, env map[string]string, flags map[string]string) (layer, string, error) {
	if l, v, ok, err := flagOrEnv(d, env, flags); ok {
		return l, v, err
	}
	if l, v, ok, err := fileValue(d, file, env); ok {
		return l, v, err
	}
	return layer{source: "default"}, d.Default, nil
}

// flagOrEnv is the value of d set by a flag or by AIRFLOW__SECTION__KEY
// (expanded), the two layers above every other; ok is false when neither
// sets it.
func flagOrEnv(d keyDef, env, flags map[string]string) (l layer, v string, ok bool, err error) {
	full := d.Section + "." + d.Name
	if v, ok := flags[full]; ok {
		return layer{"flag", full}, v, true, nil
	}
	name := envName(d.Section, d.Name)
	if v, ok := env[name]; ok {
		l := layer{"env", name}
		x, err := expandEnv(v, env)
		if err != nil {
			return l, "", true, l.valueError(d, v, err.Error())
		}
		return l, x, true, nil
	}
	return layer{}, "", false, nil
}

// fileValue is the value of d in the configuration file, interpolated and
// expanded; ok is false when the file does not set it.
func fileValue(d keyDef, file *iniFile, env map[string]string) (l layer, v string, ok bool, err error) {
	if file == nil {
		return layer{}, "", false, nil
	}
	e, found := file.lookup(d.Section, d.Name)
	if !found {
		return layer{}, "", false, nil
	}
	l = layer{"file", fmt.Sprintf("%s:%d", file.name, e.line)}
	v, err = file.interpolate(d.Section, e.value)
	if err == nil {
		v, err = expandEnv(v, env)
	}
	if err != nil {
		return l, "", true, l.valueError(d, e.value, err.Error())
	}
	return l, v, true, nil
}

// envName is Airflow's variable name for a key: AIRFLOW__SECTION__KEY.
func envName(section, key string) string {
	return "AIRFLOW__" + strings.ToUpper(section) + "__" + strings.ToUpper(key)
}

// indirectionSuffixes are Airflow's "get the value elsewhere" variants of a
// key: run a command, or ask a secrets backend.
func indirectionSuffixes() []string { return []string{"_cmd", "_secret"} }

// ignoredIndirections lists, as warnings, the *_CMD/*_SECRET variants of d
// that are present. They are not errors: the same environment drives Airflow
// components that do honour them.
func ignoredIndirections(d keyDef, file *iniFile, env map[string]string) []string {
	const why = "taskgate never runs commands or queries secrets backends for configuration"
	var out []string
	for _, suf := range indirectionSuffixes() {
		name := envName(d.Section, d.Name+suf)
		if _, ok := env[name]; ok {
			out = append(out, fmt.Sprintf("%s is ignored: %s; set %s instead", name, why, envName(d.Section, d.Name)))
		}
		if file == nil {
			continue
		}
		if e, ok := file.sections[d.Section][d.Name+suf]; ok {
			out = append(out, fmt.Sprintf("[%s] %s%s in %s:%d is ignored: %s; set [%s] %s instead",
				d.Section, d.Name, suf, file.name, e.line, why, d.Section, d.Name))
		}
	}
	return out
}

// ignoredSecretsBackends lists, as warnings, the secrets backends Airflow
// would consult before its environment variables and database ([secrets]
// backend for the API server, [workers] secrets_backend for workers).
// taskgate serves variables and connections from AIRFLOW_VAR_* and
// AIRFLOW_CONN_* and its store only, so a task would miss what such a
// backend holds. The backend's class is named; its kwargs, which may hold
// credentials, never are.
func ignoredSecretsBackends(file *iniFile, env map[string]string) []string {
	const why = "taskgate serves variables and connections only from AIRFLOW_VAR_*/AIRFLOW_CONN_* " +
		"environment variables and its database; what that backend holds is not served"
	var out []string
	for _, k := range [][2]string{{"secrets", "backend"}, {"workers", "secrets_backend"}} {
		name := envName(k[0], k[1])
		if v, ok := env[name]; ok {
			// The environment overrides the file, an empty value included.
			if v = strings.TrimSpace(v); v != "" {
				out = append(out, fmt.Sprintf("%s=%s is not consulted: %s", name, v, why))
			}
			continue
		}
		if file == nil {
			continue
		}
		if e, ok := file.lookup(k[0], k[1]); ok && strings.TrimSpace(e.value) != "" {
			out = append(out, fmt.Sprintf("[%s] %s = %s in %s:%d is not consulted: %s",
				k[0], k[1], strings.TrimSpace(e.value), file.name, e.line, why))
		}
	}
	return out
}

// checkTaskgateKeys refuses unknown keys in the [taskgate] section and in
// AIRFLOW__TASKGATE__ variables. Nothing but taskgate reads them, so an
// unknown one is a typo that would otherwise silently leave a default in
// place.
func checkTaskgateKeys(file *iniFile, env map[string]string, known map[string]bool) error {
	isKnown := func(key string) bool {
		if known["taskgate."+key] {
			return true
		}
		for _, suf := range indirectionSuffixes() {
			if base, ok := strings.CutSuffix(key, suf); ok && known["taskgate."+base] {
				return true // reported as a warning instead
			}
		}
		return false
	}
	if file != nil {
		var bad []string
		sect := file.sections["taskgate"]
		for k := range sect {
			if !isKnown(k) {
				bad = append(bad, k)
			}
		}
		if len(bad) > 0 {
			first := slices.MinFunc(bad, func(a, b string) int { return sect[a].line - sect[b].line })
			return &UnknownKeyError{Key: "taskgate." + first, Source: "file",
				Origin: fmt.Sprintf("%s:%d", file.name, sect[first].line)}
		}
	}
	const prefix = "AIRFLOW__TASKGATE__"
	for _, name := range slices.Sorted(maps.Keys(env)) {
		if rest, ok := strings.CutPrefix(name, prefix); ok && !isKnown(strings.ToLower(rest)) {
			return &UnknownKeyError{Key: "taskgate." + strings.ToLower(rest), Source: "env", Origin: name}
		}
	}
	return nil
}

// findFile returns the configuration file to read, "" for none.
func findFile(explicit string, env map[string]string) (string, error) {
	if explicit != "" {
		if _, err := os.Stat(explicit); err != nil {
			return "", fmt.Errorf("config: config file: %w", err)
		}
		return explicit, nil
	}
	var candidate string
	if p := env["AIRFLOW_CONFIG"]; p != "" {
		candidate = p
	} else if h := env["AIRFLOW_HOME"]; h != "" {
		candidate = filepath.Join(h, "airflow.cfg")
	} else {
		return "", nil
	}
	candidate, err := expandEnv(candidate, env)
	if err != nil {
		return "", fmt.Errorf("config: config file %q: %v", candidate, err)
	}
	switch _, err := os.Stat(candidate); {
	case err == nil:
		return candidate, nil
	case errors.Is(err, fs.ErrNotExist):
		return "", nil
	default:
		// Present but unreadable: starting with defaults instead would
		// silently ignore the operator's configuration.
		return "", fmt.Errorf("config: config file: %w", err)
	}
}

// parseEnv turns "K=V" entries into a map; a later entry wins, as with
// os/exec. Entries without a name are skipped.
func parseEnv(entries []string) map[string]string {
	env := make(map[string]string, len(entries))
	for _, kv := range entries {
		if i := strings.IndexByte(kv, '='); i > 0 {
			env[kv[:i]] = kv[i+1:]
		}
	}
	return env
}

// Redacted returns every key's effective value as "section.key" → text, for
// logging at start-up. jwt_secret is replaced by "<redacted>" when set (and a
// password in trusted_jwks_url is masked) so the log never holds a signing
// secret.
func (c *Config) Redacted() map[string]string {
	out := map[string]string{}
	for _, d := range keyDefs() {
		v := d.get(c)
		if d.secret && v != "" {
			v = "<redacted>"
		}
		out[d.Section+"."+d.Name] = v
	}
	return out
}

// MarkdownTable renders Keys as a Markdown table for the README, so the
// documentation is generated from the same table Load uses.
func MarkdownTable() string {
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	var b strings.Builder
	b.WriteString("| Section | Key | Default | Meaning |\n|---|---|---|---|\n")
	for _, k := range Keys() {
		def := "*(unset)*"
		if k.Default != "" {
			def = "`" + cell(k.Default) + "`"
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s |\n", cell(k.Section), cell(k.Name), def, cell(k.Doc))
	}
	return b.String()
}
