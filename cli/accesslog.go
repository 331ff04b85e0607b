package cli

import (
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"go.uber.org/zap/zapcore"

	"github.com/taskgate/taskgate/gateway"
)

// accessLog writes the gateway's access-log lines to the server log's
// output: the bytes the server's zap logger (newLoggerTo) writes for
// Info("request", e.Fields(nil)...), appended by hand. zap's generic JSON
// encoder, its field values and its escaping loop were a twentieth of a
// cached read's cost; the line is the same (TestAccessLogMatchesZap,
// FuzzAccessLogMatchesZap), and it goes through the same buffered
// writer, flushed by the same stop.
type accessLog struct {
	ws      zapcore.WriteSyncer
	enabled bool // info is enabled at the configured level
	times   *millisecondTimes
	bufs    sync.Pool // *[]byte
}

func newAccessLog(ws zapcore.WriteSyncer, level zapcore.Level, times *millisecondTimes) *accessLog {
	a := &accessLog{ws: ws, enabled: level.Enabled(zapcore.InfoLevel), times: times}
	a.bufs.New = func() any { b := make([]byte, 0, 512); return &b }
	return a
}

// LogRequest writes e's line (gateway.AccessLog).
func (a *accessLog) LogRequest(e *gateway.AccessEntry) {
	if !a.enabled {
		return
	}
	p := a.bufs.Get().(*[]byte)
	b := appendAccessLine((*p)[:0], a.times, e)
	// As zap's core, a failed write loses the line and the request goes on.
	_, _ = a.ws.Write(b)
	*p = b
	a.bufs.Put(p)
}

// appendAccessLine appends e's line as the server's zap logger encodes it:
// level, ts, msg, then e.Fields in their order, and a newline.
func appendAccessLine(b []byte, times *millisecondTimes, e *gateway.AccessEntry) []byte {
	b = append(b, `{"level":"info"`...)
	if !e.Time.IsZero() {
		b = append(b, `,"ts":`...)
		b = appendJSONString(b, times.text(e.Time))
	}
	b = append(b, `,"msg":"request","method":`...)
	b = appendJSONString(b, e.Method)
	b = append(b, `,"route":`...)
	b = appendJSONString(b, e.Route)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"latency":`...)
	// zap's SecondsDurationEncoder: a float64 of seconds, shortest form.
	b = strconv.AppendFloat(b, float64(e.Latency)/float64(time.Second), 'f', -1, 64)
	if e.CorrelationID != "" {
		b = append(b, `,"correlation_id":`...)
		b = appendJSONString(b, e.CorrelationID)
	}
	if e.TIID != "" {
		b = append(b, `,"ti_id":`...)
		b = appendJSONString(b, e.TIID)
	}
	if e.Refused {
		b = append(b, `,"auth_error":`...)
		b = appendJSONString(b, e.AuthError)
	}
	if cl := e.Claims; cl != nil {
		b = append(b, `,"sub":`...)
		b = appendJSONString(b, cl.Subject)
		b = append(b, `,"scope":`...)
		b = appendJSONString(b, string(cl.Type()))
		b = append(b, `,"jti":`...)
		b = appendJSONString(b, cl.ID)
		if comp := cl.Component(); comp != "" {
			b = append(b, `,"component":`...)
			b = appendJSONString(b, comp)
		}
	} else if cl := e.RESTClaims; cl != nil {
		b = append(b, `,"user":`...)
		b = appendJSONString(b, cl.Subject)
		b = append(b, `,"jti":`...)
		b = appendJSONString(b, cl.ID)
	}
	return append(b, "}\n"...)
}

// plainJSON marks the bytes a JSON string holds as they are: printable
// ASCII but the quote and the backslash.
var plainJSON = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// Bytes of a word, for plainWord.
const (
	ones = 0x0101010101010101
	high = 0x8080808080808080
)

// plainWord reports whether all eight bytes of w are plainJSON: none is
// below 0x20, the quote, the backslash or from 0x80 up. (w - ones*n) &^ w &
// high is non-zero exactly when some byte of w is below n (n ≤ 0x80); a
// byte equal to c is a zero byte of w ^ ones*c.
func plainWord(w uint64) bool {
	quote, backslash := w^(ones*'"'), w^(ones*'\\')
	return ((w-ones*0x20)&^w|(quote-ones)&^quote|(backslash-ones)&^backslash|w)&high == 0
}

// appendJSONString appends s quoted and escaped as zap's JSON encoder
// escapes it: the quote, the backslash, \n, \r and \t by a backslash, other
// control bytes as \u00XX, each byte of invalid UTF-8 as \ufffd, everything
// else (DEL, U+2028 included) as it is.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	last := 0
	for i := 0; i < len(s); {
		if i+8 <= len(s) && plainWord(uint64(s[i])|uint64(s[i+1])<<8|uint64(s[i+2])<<16|uint64(s[i+3])<<24|
			uint64(s[i+4])<<32|uint64(s[i+5])<<40|uint64(s[i+6])<<48|uint64(s[i+7])<<56) {
			i += 8
			continue
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if plainJSON[c] {
				i++
				continue
			}
			b = append(b, s[last:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			last = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[last:i]...)
			b = append(b, `\ufffd`...)
			i++
			last = i
			continue
		}
		i += size
	}
	b = append(b, s[last:]...)
	return append(b, '"')
}
