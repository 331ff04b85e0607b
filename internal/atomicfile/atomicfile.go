// Package atomicfile writes the small files that hold a credential (a signing
// secret, an encryption key, a workload, a login token) so that no reader and
// no crash ever sees half of one: the content goes to a temporary file in the
// same directory (so that the final step cannot cross file systems) created
// with mode 0600, is fsynced, and is then put in place in one step, after
// which the directory is fsynced so that the step itself survives a crash.
//
// Two ways of putting it in place serve two needs. CreateOnce links with
// no-replace semantics, so that processes starting at once agree on one
// generated secret; Pending and WriteFile rename over the target, so that a
// command can replace what an earlier one wrote.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// CreateOnce creates the file at path holding data, mode 0600, unless a file
// already exists there. It reports whether this call created it; when it did
// not, the caller reads the file that won (another process may have created
// it a moment ago, with other content).
func CreateOnce(path string, data []byte) (created bool, err error) {
	p, err := Prepare(path)
	if err != nil {
		return false, err
	}
	defer p.Abort() // after a successful link the content lives on under path
	if err := p.write(data); err != nil {
		return false, err
	}
	if err := os.Link(p.tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("atomicfile: create %s: %w", path, err)
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return false, err
	}
	return true, nil
}

// WriteFile replaces the file at path with data, mode 0600: a reader sees the
// old file or the new one, never a part.
func WriteFile(path string, data []byte) error {
	p, err := Prepare(path)
	if err != nil {
		return err
	}
	return p.Commit(data)
}

// Pending is a replacement of one file that has begun but is not yet in
// place. Preparing it before the content exists finds an unwritable
// destination before anything is done that the file would have to record (a
// queued workload, say).
type Pending struct {
	path string
	tmp  *os.File // nil once committed or aborted
}

// Prepare creates the temporary file next to path.
func Prepare(path string) (*Pending, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// CreateTemp opens with O_CREATE|O_EXCL and mode 0600; the chmod keeps
	// 0600 whatever the platform's default.
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	return &Pending{path: path, tmp: tmp}, nil
}

// Commit writes data and renames the temporary file over the target. The
// Pending is spent either way.
func (p *Pending) Commit(data []byte) error {
	defer p.Abort()
	if err := p.write(data); err != nil {
		return err
	}
	if err := os.Rename(p.tmp.Name(), p.path); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", p.path, err)
	}
	return SyncDir(filepath.Dir(p.path))
}

// Abort removes the temporary file. It does nothing after Commit, or when
// called again, so it can be deferred right after Prepare.
func (p *Pending) Abort() {
	if p.tmp != nil {
		p.tmp.Close()
		os.Remove(p.tmp.Name()) // fails harmlessly once renamed away
		p.tmp = nil
	}
}

// write fills, fsyncs and closes the temporary file. It keeps p.tmp (closed)
// so that the caller can still link or rename it by name and Abort can
// remove it.
func (p *Pending) write(data []byte) error {
	if p.tmp == nil {
		return fmt.Errorf("atomicfile: write %s: already committed or aborted", p.path)
	}
	if _, err := p.tmp.Write(data); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", p.path, err)
	}
	if err := p.tmp.Sync(); err != nil {
		return fmt.Errorf("atomicfile: sync %s: %w", p.path, err)
	}
	if err := p.tmp.Close(); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", p.path, err)
	}
	return nil
}
