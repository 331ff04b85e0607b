package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/taskgate/taskgate/bench"
)

// process is a server under test.
type process struct {
	name    string
	cmd     *exec.Cmd
	pid     int
	addr    string
	logPath string // "" when the log goes to /dev/null
	logFile *os.File
	exited  chan struct{}
	// startup is the time from exec to the first 200 on /execution/health.
	startup time.Duration
	// logErrors counts error-level lines of the server's log.
	logErrors int
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// start runs bin with args (pinned with taskset when configured) and waits
// until it answers /execution/health, measuring the time from exec.
func (b *benchmark) start(name, bin string, args, env []string) (*process, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p := &process{name: name, addr: addr, exited: make(chan struct{})}
	logTo := os.DevNull
	if b.opts.serverLog == "file" {
		p.logPath = filepath.Join(b.tmp, name+".log")
		logTo = p.logPath
	}
	if p.logFile, err = os.OpenFile(logTo, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err != nil {
		return nil, err
	}
	args = append(args, "--listen", addr)
	if b.opts.serverCPU != "" {
		args = append([]string{"-c", b.opts.serverCPU, bin}, args...)
		bin = "taskset"
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.logFile, p.logFile
	begin := time.Now()
	if err := p.cmd.Start(); err != nil {
		p.logFile.Close()
		return nil, err
	}
	p.pid = p.cmd.Process.Pid // taskset execs the server: the same pid
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	if err := p.waitReady(30 * time.Second); err != nil {
		p.kill()
		return nil, fmt.Errorf("%s did not become ready: %w%s", name, err, p.logTail())
	}
	p.startup = time.Since(begin)
	return p, nil
}

// waitReady polls /execution/health every millisecond until it answers 200.
func (p *process) waitReady(limit time.Duration) error {
	hc := &http.Client{Timeout: 500 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(limit)
	for {
		select {
		case <-p.exited:
			return errors.New("the process exited")
		default:
		}
		resp, err := hc.Get("http://" + p.addr + "/execution/health")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no 200 from /execution/health within %s (last error: %v)", limit, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// cpu reads the server's CPU time.
func (p *process) cpu() (bench.ProcCPU, error) { return bench.ReadProcCPU(p.pid) }

// memory is a server's resident set, in bytes.
type memory struct {
	// peak is VmHWM, the high-water mark of the resident set.
	peak uint64
	// anon and file split the current resident set (not the peak) into
	// anonymous memory (the Go heap, stacks) and file pages mapped in
	// (bbolt maps its whole file, and the pages it touched count here).
	anon, file uint64
}

// memory reads the server's resident set from /proc/<pid>/status.
func (p *process) memory() (memory, error) {
	var m memory
	for _, f := range []struct {
		name string
		to   *uint64
	}{{"VmHWM", &m.peak}, {"RssAnon", &m.anon}, {"RssFile", &m.file}} {
		kb, err := bench.ReadStatusKB(p.pid, f.name)
		if err != nil {
			return m, err
		}
		*f.to = kb << 10
	}
	return m, nil
}

// alive reports whether the server is still running.
func (p *process) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// scanLog counts the error-level lines the server logged since the last
// scan, then empties the log so that a long benchmark does not fill the disk
// (the server appends, so it keeps writing at the new end).
func (p *process) scanLog() error {
	if p.logPath == "" {
		return nil
	}
	f, err := os.Open(p.logPath)
	if err != nil {
		return err
	}
	defer f.Close()
	needle := []byte(`"level":"error"`)
	buf := make([]byte, 1<<20)
	carry := 0
	for {
		n, err := f.Read(buf[carry:])
		chunk := buf[:carry+n]
		p.logErrors += bytes.Count(chunk, needle)
		// Keep the tail that could hold the start of a match.
		carry = min(len(needle)-1, len(chunk))
		copy(buf, chunk[len(chunk)-carry:])
		if err == io.EOF {
			break
		} else if err != nil {
			return err
		}
	}
	return os.Truncate(p.logPath, 0)
}

// logTail returns the end of the server's log for an error message.
func (p *process) logTail() string {
	if p.logPath == "" {
		return ""
	}
	b, err := os.ReadFile(p.logPath)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "\n--- end of " + p.logPath + " ---\n" + string(b)
}

// stop asks the server to shut down (SIGTERM: finish in-flight requests,
// close the database) and waits for it.
func (p *process) stop() error {
	defer p.logFile.Close()
	if !p.alive() {
		return fmt.Errorf("%s exited early%s", p.name, p.logTail())
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(40 * time.Second):
		p.kill()
		return fmt.Errorf("%s did not stop within 40s of SIGTERM", p.name)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("%s exited with code %d%s", p.name, code, p.logTail())
	}
	return nil
}

func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
	p.logFile.Close()
}
