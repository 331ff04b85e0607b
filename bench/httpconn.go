package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// Conn is one keep-alive HTTP/1.1 connection that sends pre-encoded
// requests and reads responses with as little work as possible.
//
// The load generator has one core, like the server. Go's net/http client
// spends several times the CPU per request of a bare Echo handler (header
// maps, a goroutine per connection for reads, a context per request), which
// would make the generator, not the server, the bottleneck of the baseline.
// Conn does what wrk does instead: write the request bytes, parse the status
// line and the four headers it needs, read the body into a reused buffer.
// It is not safe for concurrent use: each worker owns one.
type Conn struct {
	addr     string
	nc       net.Conn
	r        *bufio.Reader
	body     []byte
	deadline time.Time
}

// Response is one parsed response. Body is valid until the next call.
type Response struct {
	Status int
	Body   []byte
	// Refreshed is the Refreshed-API-Token header, "" when absent.
	Refreshed string
	// Close reports that the server will close the connection.
	Close bool
}

// NewConn returns a connection to addr (host:port); it dials on first use.
func NewConn(addr string) *Conn { return &Conn{addr: addr} }

// Dial connects now if not connected, so that connection set-up does not
// count in the first request's latency.
func (c *Conn) Dial() error {
	if c.nc != nil {
		return nil
	}
	nc, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
	if err != nil {
		return err
	}
	if !c.deadline.IsZero() {
		_ = nc.SetDeadline(c.deadline)
	}
	c.nc = nc
	if c.r == nil {
		c.r = bufio.NewReaderSize(nc, 32<<10)
	} else {
		c.r.Reset(nc)
	}
	return nil
}

// SetDeadline bounds every later read and write (zero: none), so that a hung
// server cannot hang the load generator; set once per phase, it costs nothing
// per request.
func (c *Conn) SetDeadline(t time.Time) {
	c.deadline = t
	if c.nc != nil {
		_ = c.nc.SetDeadline(t)
	}
}

// Do sends one encoded request and reads its response. After a transport
// error, or a response announcing Connection: close, the connection is
// dropped and the next call dials again.
func (c *Conn) Do(req []byte) (Response, error) {
	if err := c.Dial(); err != nil {
		return Response{}, err
	}
	if _, err := c.nc.Write(req); err != nil {
		c.Close()
		return Response{}, err
	}
	resp, body, err := ReadResponse(c.r, c.body)
	c.body = body
	if err != nil || resp.Close {
		c.Close()
	}
	return resp, err
}

// Close closes the connection; the next Do dials again.
func (c *Conn) Close() {
	if c.nc != nil {
		_ = c.nc.Close()
		c.nc = nil
	}
}

// ReadResponse parses one HTTP/1.1 response (to a request that was not
// HEAD) from r, reading the body into buf (grown as needed and returned for
// reuse). It understands Content-Length, chunked transfer encoding and
// bodies delimited by the connection's end.
func ReadResponse(r *bufio.Reader, buf []byte) (Response, []byte, error) {
	var resp Response
	line, err := r.ReadSlice('\n')
	if err != nil {
		return resp, buf, fmt.Errorf("bench: read status line: %w", err)
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return resp, buf, fmt.Errorf("bench: malformed status line %q", bytes.TrimSpace(line))
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return resp, buf, fmt.Errorf("bench: malformed status line %q", bytes.TrimSpace(line))
	}
	resp.Status = status
	resp.Close = line[7] == '0' // HTTP/1.0 closes unless told otherwise; we never ask it not to
	length, chunked := -1, false
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return resp, buf, fmt.Errorf("bench: read header: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return resp, buf, fmt.Errorf("bench: malformed header %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return resp, buf, fmt.Errorf("bench: bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			resp.Close = bytes.EqualFold(value, []byte("close"))
		case bytes.EqualFold(name, []byte("Refreshed-API-Token")):
			resp.Refreshed = string(value)
		}
	}
	buf = buf[:0]
	switch {
	case status < 200 || status == 204 || status == 304:
	case chunked:
		buf, err = readChunked(r, buf)
	case length >= 0:
		if cap(buf) < length {
			buf = make([]byte, 0, length)
		}
		buf = buf[:length]
		_, err = io.ReadFull(r, buf)
	default:
		resp.Close = true
		var b bytes.Buffer
		b.Write(buf)
		_, err = b.ReadFrom(r)
		buf = b.Bytes()
	}
	if err != nil {
		return resp, buf, fmt.Errorf("bench: read body: %w", err)
	}
	resp.Body = buf
	return resp, buf, nil
}

// readChunked appends a chunked body to buf, skipping trailers.
func readChunked(r *bufio.Reader, buf []byte) ([]byte, error) {
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return buf, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(line)), 16, 31)
		if err != nil {
			return buf, fmt.Errorf("bad chunk size %q", line)
		}
		if n == 0 {
			for { // trailers, up to the empty line
				line, err := r.ReadSlice('\n')
				if err != nil {
					return buf, err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return buf, nil
				}
			}
		}
		start := len(buf)
		buf = append(buf, make([]byte, n)...)
		if _, err := io.ReadFull(r, buf[start:]); err != nil {
			return buf, err
		}
		crlf, err := r.ReadSlice('\n')
		if err != nil {
			return buf, err
		}
		if len(bytes.TrimRight(crlf, "\r\n")) != 0 {
			return buf, errors.New("chunk not followed by CRLF")
		}
	}
}

// Request encodes requests to one server. Fixed headers (Host, the API
// version, the User-Agent) are encoded once.
type Request struct {
	fixed string
}

// NewRequest returns an encoder whose requests carry host and the extra
// header lines (each "Name: value").
func NewRequest(host string, headers ...string) *Request {
	s := "Host: " + host + "\r\n"
	for _, h := range headers {
		s += h + "\r\n"
	}
	return &Request{fixed: s}
}

// Append appends one request to b: method and target (path and query),
// a bearer token unless empty, a correlation id unless empty, and body as
// JSON unless nil.
func (q *Request) Append(b []byte, method, target, token, correlationID string, body []byte) []byte {
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, target...)
	b = append(b, " HTTP/1.1\r\n"...)
	b = append(b, q.fixed...)
	if token != "" {
		b = append(b, "Authorization: Bearer "...)
		b = append(b, token...)
		b = append(b, "\r\n"...)
	}
	if correlationID != "" {
		b = append(b, "Correlation-Id: "...)
		b = append(b, correlationID...)
		b = append(b, "\r\n"...)
	}
	if body != nil {
		b = append(b, "Content-Type: application/json\r\nContent-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
		b = append(b, "\r\n\r\n"...)
		return append(b, body...)
	}
	return append(b, "\r\n"...)
}
