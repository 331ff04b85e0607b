package cli

// Reading a user name or password: from standard input with
// --password-stdin, else from a prompt on a terminal.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// readPassword reads a password: the first line of standard input with
// --password-stdin, else from a prompt when standard input is a terminal.
// Without golang.org/x/term the prompt cannot turn echo off, and says so.
func (e *cliEnv) readPassword(in *bufio.Reader, fromStdin, confirm bool) (string, error) {
	if fromStdin {
		pw, err := readLine(in)
		if err != nil {
			return "", fmt.Errorf("read the password from standard input: %w", err)
		}
		return pw, nil
	}
	if !isTerminal(e.stdin) {
		return "", usagef("standard input is not a terminal: pass the password on it with --password-stdin")
	}
	fmt.Fprint(e.stderr, "Password (typing is visible; --password-stdin avoids that): ")
	pw, err := readLine(in)
	if err != nil {
		return "", fmt.Errorf("read the password: %w", err)
	}
	if confirm {
		fmt.Fprint(e.stderr, "Repeat the password: ")
		again, err := readLine(in)
		if err != nil {
			return "", fmt.Errorf("read the password: %w", err)
		}
		if again != pw {
			return "", errors.New("the passwords differ")
		}
	}
	return pw, nil
}

// readLine reads one line without its line ending. Nothing at all is an
// error: an empty password is never what was meant.
func readLine(in *bufio.Reader) (string, error) {
	line, err := in.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return "", errors.New("no input")
		}
		return "", err
	}
	return strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r"), nil
}

// isTerminal reports whether r is an interactive terminal: a character
// device other than the null device.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(fi, null)
}
