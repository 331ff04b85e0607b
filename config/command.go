package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// commandTimeout bounds an AIRFLOW__…_CMD command, so that a hung secret
// helper fails start-up instead of hanging it.
const commandTimeout = time.Minute

// resolveSensitive resolves one of Airflow's sensitive keys in Airflow's
// order (configuration.py _get_env_var_option, _get_cmd_option): the flag
// (taskgate's own layer), then AIRFLOW__S__K, AIRFLOW__S__K_CMD,
// AIRFLOW__S__K_SECRET, the file's key, key_cmd, key_secret, the default.
// A command's standard output, surrounding white space trimmed, is the
// value. A _secret variant that would decide the value is an error: it
// names a path in Airflow's secrets backend (a Python class), which
// taskgate cannot query, and starting on the embedded store instead would
// silently split the deployment's state.
func resolveSensitive(d keyDef, file *iniFile, env map[string]string, src Sources) (layer, string, error) {
	if l, v, ok, err := flagOrEnv(d, env, src.Flags); ok {
		return l, v, err
	}
	name := envName(d.Section, d.Name)
	if cmd, ok := env[name+"_CMD"]; ok {
		l := layer{"env", name + "_CMD"}
		v, err := runCommand(cmd, env, src.Run)
		if err != nil {
			return l, "", l.valueError(d, "", err.Error())
		}
		return l, v, nil
	}
	if _, ok := env[name+"_SECRET"]; ok {
		l := layer{"env", name + "_SECRET"}
		return l, "", l.valueError(d, "", fmt.Sprintf("taskgate cannot query Airflow's secrets backends: set %s or %s_CMD", name, name))
	}
	if l, v, ok, err := fileValue(d, file, env); ok {
		return l, v, err
	}
	if file != nil {
		if e, ok := file.lookup(d.Section, d.Name+"_cmd"); ok {
			l := layer{"file", fmt.Sprintf("%s:%d", file.name, e.line)}
			cmd, err := file.interpolate(d.Section, e.value)
			if err != nil {
				return l, "", l.valueError(d, "", err.Error())
			}
			v, err := runCommand(cmd, env, src.Run)
			if err != nil {
				return l, "", l.valueError(d, "", err.Error())
			}
			return l, v, nil
		}
		if e, ok := file.lookup(d.Section, d.Name+"_secret"); ok {
			l := layer{"file", fmt.Sprintf("%s:%d", file.name, e.line)}
			return l, "", l.valueError(d, "", fmt.Sprintf("taskgate cannot query Airflow's secrets backends: set [%s] %s or %s_cmd",
				d.Section, d.Name, d.Name))
		}
	}
	return layer{source: "default"}, d.Default, nil
}

// runCommand runs command as Airflow's run_command does (split by
// shlex.split, no shell) and returns its trimmed standard output. Neither
// the command nor its output goes into the error: either may hold the
// secret.
func runCommand(command string, env map[string]string, run func(argv, env []string) ([]byte, error)) (string, error) {
	argv, err := shlexSplit(command)
	if err != nil {
		return "", fmt.Errorf("command: %v", err)
	}
	if len(argv) == 0 {
		return "", errors.New("command is empty")
	}
	environ := make([]string, 0, len(env))
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	if run == nil {
		run = execCommand
	}
	out, err := run(argv, environ)
	if err != nil {
		return "", fmt.Errorf("command %s failed: %v", argv[0], err)
	}
	return strings.TrimSpace(string(out)), nil
}

func execCommand(argv, env []string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Run(); err != nil {
		return nil, err
	}
	return stdout.Bytes(), nil
}

// shlexSplit splits s as Python's shlex.split (POSIX mode, no comments)
// does: white space separates words; single quotes keep everything; double
// quotes keep everything but a backslash before '"' or '\'; outside quotes
// a backslash keeps the next character.
func shlexSplit(s string) ([]string, error) {
	var out []string
	var word strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				out = append(out, word.String())
				word.Reset()
				inWord = false
			}
		case c == '\\':
			inWord = true
			if i+1 < len(s) {
				i++
				word.WriteByte(s[i])
			} else {
				return nil, errors.New("no escaped character")
			}
		case c == '\'':
			inWord = true
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("no closing quotation")
			}
			word.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			inWord = true
			closed := false
			for i++; i < len(s); i++ {
				if s[i] == '"' {
					closed = true
					break
				}
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				}
				word.WriteByte(s[i])
			}
			if !closed {
				return nil, errors.New("no closing quotation")
			}
		default:
			inWord = true
			word.WriteByte(c)
		}
	}
	if inWord {
		out = append(out, word.String())
	}
	return out, nil
}
