package worker

import (
	"bytes"
	"sync"

	"go.uber.org/zap"
)

// lineLogger is the command's stdout or stderr: every line becomes one log
// entry with the stream's name, so the task's output lands in the worker's
// JSON log in order and attributable. It remembers the last complete line,
// the candidate return value.
type lineLogger struct {
	mu      sync.Mutex
	log     *zap.Logger
	stream  string
	max     int
	buf     []byte
	partial bool   // buf continues a line already logged in pieces
	last    []byte // the last whole line; nil after a line logged in pieces
}

func newLineLogger(log *zap.Logger, stream string, maxLen int) *lineLogger {
	return &lineLogger{log: log, stream: stream, max: maxLen}
}

// Write logs every complete line of p and keeps the rest for the next write.
func (w *lineLogger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			p = nil
		} else {
			w.buf = append(w.buf, p[:i]...)
			p = p[i+1:]
		}
		for len(w.buf) > w.max {
			w.piece()
		}
		if i >= 0 {
			w.line()
		}
	}
	return n, nil
}

// Flush logs an unterminated last line; call it once the command exited.
func (w *lineLogger) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 || w.partial {
		w.line()
	}
}

// LastLine is the last whole line written.
func (w *lineLogger) LastLine() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// line logs buf as one line. Lines are logged as copies (zap.String, not
// ByteString): buf is reused, and a core may keep fields after the call.
func (w *lineLogger) line() {
	text := bytes.TrimSuffix(w.buf, []byte("\r"))
	if w.partial {
		w.log.Info("task output", zap.String("stream", w.stream), zap.String("line", string(text)), zap.Bool("continued", true))
		w.last = nil
	} else {
		w.log.Info("task output", zap.String("stream", w.stream), zap.String("line", string(text)))
		w.last = append(w.last[:0:0], text...)
	}
	w.partial = false
	w.buf = w.buf[:0]
}

// piece logs the first max bytes of an overlong line.
func (w *lineLogger) piece() {
	w.log.Info("task output", zap.String("stream", w.stream), zap.String("line", string(w.buf[:w.max])),
		zap.Bool("truncated", true), zap.Bool("continued", w.partial))
	n := copy(w.buf, w.buf[w.max:])
	w.buf = w.buf[:n]
	w.partial = true
	w.last = nil
}
