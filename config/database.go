package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ErrUnsupportedDatabase is a [database] sql_alchemy_conn that names a
// database or driver taskgate cannot use (yet).
var ErrUnsupportedDatabase = errors.New("not supported yet")

// sqlAlchemyURL is SQLAlchemy's own URL pattern (sqlalchemy/engine/url.py
// _parse_url): unlike an RFC 3986 URL, the password runs to the '@', so
// Airflow users' unencoded '/', '?', '#' or ':' in a password are read as
// SQLAlchemy reads them (an '@' in it must be written %40, for both).
var sqlAlchemyURL = regexp.MustCompile(`(?s)^(?P<name>[\w+]+)://` +
	`(?:(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@)?` +
	`(?:(?:\[(?P<ipv6host>[^/?]+)\]|(?P<ipv4host>[^/:?]+))?(?::(?P<port>[^/?]*))?)?` +
	`(?:/(?P<database>[^?]*))?` +
	`(?:\?(?P<query>.*))?$`)

// postgresDrivers are the SQLAlchemy dialect+driver names of PostgreSQL
// whose URL query options are libpq's, which pgx reads the same way.
func postgresDrivers() []string {
	return []string{"postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg", "postgresql+psycopg2cffi"}
}

// droppedQueryOptions are query options of SQLAlchemy's PostgreSQL dialects
// that configure the Python driver, not the connection: pgx would send them
// to the server as settings, which it would refuse. TCP keepalives are
// pgx's own (on, every 5 minutes), so libpq's keepalive knobs are dropped
// too.
func droppedQueryOptions() []string {
	return []string{
		"executemany_mode", "executemany_batch_page_size", "executemany_values_page_size",
		"use_native_hstore", "use_native_unicode", "use_native_uuid", "server_side_cursors",
		"keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
	}
}

// refusedQueryOptions are libpq options pgx does not implement; passing one
// on as a server setting would fail at the first connection with a less
// clear message, and ignoring one could weaken what the operator asked for
// (certificate revocation lists, peer checks).
func refusedQueryOptions() []string {
	return []string{
		"hostaddr", "requiressl", "sslcompression", "sslcrl", "sslcrldir", "ssl_min_protocol_version",
		"ssl_max_protocol_version", "requirepeer", "gssencmode", "gsslib", "gssdelegation",
		"replication", "load_balance_hosts", "tcp_user_timeout",
	}
}

// PostgresURL turns Airflow's [database] sql_alchemy_conn, a SQLAlchemy
// URL, into the postgres:// URL pgx takes. It accepts postgresql://,
// postgres:// and the psycopg2, psycopg and psycopg2cffi drivers; percent-
// encoded user names and passwords are decoded as SQLAlchemy decodes them;
// the query string's libpq options (sslmode, sslrootcert, connect_timeout,
// application_name, options=-csearch_path=…, target_session_attrs, …) are
// kept, SQLAlchemy's driver-only options dropped, and psycopg2's repeated
// host=h:p options (several hosts) become libpq's host and port lists. Any
// other database (MySQL, SQLite, …) or driver is an error wrapping
// ErrUnsupportedDatabase that names it. The error never contains the
// password.
func PostgresURL(conn string) (string, error) {
	conn = strings.TrimSpace(conn)
	idx := sqlAlchemyURL.FindStringSubmatchIndex(conn)
	if idx == nil {
		return "", errors.New("not a SQLAlchemy URL (dialect+driver://user:password@host:port/database?options)")
	}
	// group returns the named part and whether it matched at all.
	group := func(name string) (string, bool) {
		i := sqlAlchemyURL.SubexpIndex(name)
		if idx[2*i] < 0 {
			return "", false
		}
		return conn[idx[2*i]:idx[2*i+1]], true
	}
	part := func(name string) string { s, _ := group(name); return s }
	name := strings.ToLower(part("name"))
	if !slices.Contains(postgresDrivers(), name) {
		dialect, driver, _ := strings.Cut(name, "+")
		switch dialect {
		case "postgresql", "postgres":
			return "", fmt.Errorf("PostgreSQL driver %q is %w: use postgresql:// or postgresql+psycopg2://", driver, ErrUnsupportedDatabase)
		case "mysql", "mariadb":
			return "", fmt.Errorf("MySQL (%s://) is %w: taskgate serves Airflow's metadata database on PostgreSQL only", name, ErrUnsupportedDatabase)
		case "sqlite":
			return "", fmt.Errorf("SQLite (%s://) is %w: taskgate serves Airflow's metadata database on PostgreSQL only", name, ErrUnsupportedDatabase)
		}
		return "", fmt.Errorf("database %s:// is %w: taskgate serves Airflow's metadata database on PostgreSQL only", name, ErrUnsupportedDatabase)
	}

	u := &url.URL{Scheme: "postgres"}
	// SQLAlchemy unquotes user name and password with urllib's unquote,
	// which leaves a malformed escape as it is.
	unquote := func(s string) string {
		if x, err := url.PathUnescape(s); err == nil {
			return x
		}
		return s
	}
	if user, ok := group("username"); ok {
		if pw, ok := group("password"); ok {
			u.User = url.UserPassword(unquote(user), unquote(pw))
		} else if user != "" {
			u.User = url.User(unquote(user))
		}
	}
	host := part("ipv4host")
	if h := part("ipv6host"); h != "" {
		host = "[" + h + "]"
	}
	if port := part("port"); port != "" {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return "", fmt.Errorf("port %q is not a number", port)
		}
		host += ":" + port
	}
	u.Host = host
	if db := part("database"); db != "" {
		u.Path = "/" + db
	}

	q, err := url.ParseQuery(part("query"))
	if err != nil {
		return "", fmt.Errorf("query string: %v", err)
	}
	for _, k := range droppedQueryOptions() {
		q.Del(k)
	}
	for k := range q {
		if slices.Contains(refusedQueryOptions(), k) {
			return "", fmt.Errorf("query option %q is %w by taskgate's PostgreSQL driver (pgx)", k, ErrUnsupportedDatabase)
		}
	}
	if hosts := q["host"]; len(hosts) > 1 || (len(hosts) == 1 && strings.Contains(hosts[0], ",")) {
		// psycopg2's multi-host form: host=h1:p1&host=h2:p2 (or one
		// comma-separated host option).
		var hs, ps []string
		for _, entry := range hosts {
			for _, hp := range strings.Split(entry, ",") {
				h, p, err := net.SplitHostPort(hp)
				if err != nil {
					h, p = hp, ""
				}
				hs = append(hs, h)
				ps = append(ps, p)
			}
		}
		q.Set("host", strings.Join(hs, ","))
		if slices.ContainsFunc(ps, func(p string) bool { return p != "" }) {
			for i, p := range ps {
				if p == "" {
					ps[i] = "5432"
				}
			}
			q.Set("port", strings.Join(ps, ","))
		}
		if u.Host != "" {
			return "", errors.New("both a host and host= options: name the hosts one way")
		}
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}
