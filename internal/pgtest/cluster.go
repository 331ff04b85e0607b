package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
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
func resolveServer(envURL, localURL, binGlob string) (string, error) {
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
	c, err := startCluster(binGlob)
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

// redact hides a password in u.
func redact(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Redacted()
	}
	return "the server"
}

// errNoBinaries: PostgreSQL is not installed where we look.
var errNoBinaries = errors.New("no initdb and postgres binaries in PATH or " + postgresBinGlob)

// cluster is a PostgreSQL server in a temporary directory, trust auth,
// listening on a free loopback port, owned by this process.
type cluster struct {
	dir, data, bin string
	port           int
	cred           *syscall.Credential
	url            string

	mu   sync.Mutex // guards the running server below
	cmd  *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer
}

const clusterPrefix = "taskgate-pgtest-"

// startCluster creates a cluster (initdb) and starts it.
func startCluster(binGlob string) (*cluster, error) {
	bin, err := findBinaries(binGlob)
	if err != nil {
		return nil, err
	}
	removeStaleClusters()
	dir, err := os.MkdirTemp("", clusterPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: dir, data: filepath.Join(dir, "data"), bin: bin}
	if err := c.init(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := c.start(); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

func (c *cluster) init() error {
	var err error
	if c.cred, err = credential(c.dir); err != nil {
		return err
	}
	initdb := exec.Command(filepath.Join(c.bin, "initdb"), "-D", c.data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Dir = c.dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v\n%s", err, out)
	}
	if c.port, err = freePort(); err != nil {
		return err
	}
	c.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
	return nil
}

// start runs the server and waits until it answers.
func (c *cluster) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		return nil
	}
	cmd := exec.Command(filepath.Join(c.bin, "postgres"), "-D", c.data, "-p", strconv.Itoa(c.port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+c.dir,
		"-c", "max_connections=300", "-c", "fsync=off", "-c", "full_page_writes=off")
	cmd.Dir = c.dir
	log := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = log, log
	// On Linux the server dies with the test binary: SIGQUIT (immediate
	// shutdown) when the thread that started it ends, and that thread is
	// locked to the goroutine waiting for the server for as long as it
	// runs. Elsewhere see serverAttr.
	cmd.SysProcAttr = serverAttr(c.cred)
	done := make(chan struct{})
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			close(done)
			return
		}
		started <- nil
		cmd.Wait()
		close(done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	c.cmd, c.done, c.log = cmd, done, log
	deadline := time.Now().Add(30 * time.Second)
	for ping(c.url) != nil {
		select {
		case <-done:
			c.cmd = nil
			return fmt.Errorf("postgres exited: %s", log)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not answer within 30s")
		}
	}
	return nil
}

// halt sends sig to the server (SIGINT: fast shutdown, SIGKILL: a crash)
// and waits for it to exit.
func (c *cluster) halt(sig syscall.Signal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return
	}
	c.cmd.Process.Signal(sig)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
	c.cmd = nil
}

// stop shuts the server down and removes its directory.
func (c *cluster) stop() {
	c.halt(syscall.SIGINT)
	os.RemoveAll(c.dir)
}

// Cluster is a PostgreSQL server of one test's own, for tests that stop,
// crash or restart the database under load.
type Cluster struct {
	// URL is the maintenance database of the server (user postgres, trust).
	URL string
	c   *cluster
}

// NewCluster starts a throwaway cluster for t from the installed
// PostgreSQL binaries (a few seconds); it is removed when t ends. It fails
// t, or skips it with TASKGATE_SKIP_POSTGRES=1, without PostgreSQL.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := startCluster(postgresBinGlob)
	if err != nil {
		if os.Getenv("TASKGATE_SKIP_POSTGRES") == "1" {
			t.Skipf("no PostgreSQL cluster and TASKGATE_SKIP_POSTGRES=1: %v", err)
			return nil
		}
		t.Fatalf("pgtest: no PostgreSQL cluster for the test: %v\n%s", err, installHint)
		return nil
	}
	t.Cleanup(c.stop)
	return &Cluster{URL: c.url, c: c}
}

// Stop shuts the server down (fast shutdown: clients are disconnected).
func (c *Cluster) Stop() { c.c.halt(syscall.SIGINT) }

// Kill crashes the server (SIGKILL to the postmaster); Start recovers it.
func (c *Cluster) Kill() { c.c.halt(syscall.SIGKILL) }

// Start starts the server again on the same data and port, and waits
// until it answers.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	if err := c.c.start(); err != nil {
		t.Fatalf("pgtest: restart cluster: %v", err)
	}
}

// NewDatabase creates an empty database on the cluster, like the package's
// NewDatabase on the shared server.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	return newDatabaseOn(t, c.URL)
}

// postgresBinGlob is where Debian and Ubuntu install each PostgreSQL version.
const postgresBinGlob = "/usr/lib/postgresql/*/bin"

// findBinaries returns the directory holding initdb and postgres: the one
// of initdb in PATH, else the newest of binGlob (postgresBinGlob).
func findBinaries(binGlob string) (string, error) {
	var dirs []string
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(r))
		}
		dirs = append(dirs, filepath.Dir(p))
	}
	versions, _ := filepath.Glob(binGlob)
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
