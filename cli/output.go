package cli

// How the commands print records: aligned tables, times in RFC 3339.

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// table prints rows under a header, aligned.
func table(w io.Writer, header string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func formatTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// notFound says which record is missing when err is the backend's
// errNotFound ("variable \"k\" not found"); other errors pass unchanged.
func notFound(err error, format string, args ...any) error {
	if errors.Is(err, errNotFound) {
		return fmt.Errorf(format+" not found", args...)
	}
	return err
}

// optional is a table cell for a field that may be unset.
func optional(p *string) string {
	if p == nil {
		return "-"
	}
	return *p
}
