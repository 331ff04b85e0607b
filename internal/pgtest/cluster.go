package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The server the tests of one process use, decided once: an explicit URL,
// the local server, or a throwaway cluster this process started. Shared
// state of the test binary, not of any server code.
var shared struct {
	sync.Mutex
	url     string
	cluster *cluster
}

// Main runs a package's tests and then stops the throwaway cluster they
// may have started. Packages using pgtest call it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// Without it the cluster still dies with the test binary (it is started
// with a parent-death signal) and its directory is removed by the next run.
func Main(m *testing.M) {
	code := m.Run()
	StopCluster()
	os.Exit(code)
}

// StopCluster stops the throwaway cluster, if this process started one,
// and removes its directory.
func StopCluster() {
	shared.Lock()
	defer shared.Unlock()
	if shared.cluster != nil {
		shared.cluster.stop()
		shared.cluster = nil
		shared.url = ""
	}
}

// resolveServer returns the server to use: envURL when set, else localURL
// when it answers, else a throwaway cluster started from the installed
// PostgreSQL binaries (once per process).
func resolveServer(envURL, localURL string) (string, error) {
	if envURL != "" {
		return envURL, nil
	}
	shared.Lock()
	defer shared.Unlock()
	if shared.url != "" {
		return shared.url, nil
	}
	localErr := ping(localURL)
	if localErr == nil {
		shared.url = localURL
		return localURL, nil
	}
	c, err := startCluster()
	if err != nil {
		return "", fmt.Errorf("%s does not answer (%v), and no throwaway cluster: %w", redact(localURL), localErr, err)
	}
	shared.cluster, shared.url = c, c.url
	return c.url, nil
}

func ping(u string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

func redact(u string) string {
	if i := strings.Index(u, "@"); i >= 0 {
		if j := strings.Index(u, "://"); j >= 0 && j < i {
			return u[:j+3] + "…" + u[i:]
		}
	}
	return u
}

// errNoBinaries: PostgreSQL is not installed where we look.
var errNoBinaries = errors.New("no initdb and postgres binaries in PATH or /usr/lib/postgresql/*/bin")

// cluster is a PostgreSQL server in a temporary directory, trust auth,
// listening on a free loopback port, owned by this process.
type cluster struct {
	dir  string
	url  string
	cmd  *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer
}

const clusterPrefix = "taskgate-pgtest-"

func startCluster() (*cluster, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	removeStaleClusters()
	dir, err := os.MkdirTemp("", clusterPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return nil, err
	}
	cred, err := credential(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c := &cluster{
		dir:  dir,
		url:  fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port),
		done: make(chan struct{}),
		log:  &bytes.Buffer{},
	}
	c.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+dir,
		"-c", "max_connections=300", "-c", "fsync=off", "-c", "full_page_writes=off")
	c.cmd.Dir = dir
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	// The server dies with the test binary: SIGQUIT (immediate shutdown)
	// when the thread that started it ends, and that thread is locked to
	// the goroutine waiting for the server for as long as it runs.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := c.cmd.Start(); err != nil {
			started <- err
			close(c.done)
			return
		}
		started <- nil
		c.cmd.Wait()
		close(c.done)
	}()
	if err := <-started; err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if ping(c.url) == nil {
			return c, nil
		}
		select {
		case <-c.done:
			os.RemoveAll(dir)
			return nil, fmt.Errorf("postgres exited: %s", c.log)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, fmt.Errorf("postgres did not answer within 30s: %s", c.log)
		}
	}
}

// stop shuts the server down fast (SIGINT) and removes its directory.
func (c *cluster) stop() {
	if c.cmd.Process != nil {
		c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			c.cmd.Process.Kill()
			<-c.done
		}
	}
	os.RemoveAll(c.dir)
}

// findBinaries returns the directory holding initdb and postgres: the one
// of initdb in PATH, else the newest /usr/lib/postgresql/<version>/bin.
func findBinaries() (string, error) {
	var dirs []string
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(r))
		}
		dirs = append(dirs, filepath.Dir(p))
	}
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(versions, func(a, b string) int { return versionOf(b) - versionOf(a) })
	dirs = append(dirs, versions...)
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errNoBinaries
}

func versionOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// credential: PostgreSQL refuses to run as root, so as root the cluster
// runs as the postgres user (or nobody), which then owns dir.
func credential(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 != nil || err2 != nil {
			continue
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root and no postgres or nobody user to run PostgreSQL as")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// removeStaleClusters removes the directories of clusters whose test
// binary is gone (one that ended without Main).
func removeStaleClusters() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), clusterPrefix+"*"))
	for _, d := range dirs {
		rest := strings.TrimPrefix(filepath.Base(d), clusterPrefix)
		pid, err := strconv.Atoi(strings.SplitN(rest, "-", 2)[0])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(d)
		}
	}
}
