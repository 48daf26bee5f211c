package server

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"
)

type loggerKey struct{}

// LoggerFrom returns the request-scoped logger (carrying the request id)
// stored in ctx by the server, or def when there is none.
func LoggerFrom(ctx context.Context, def *slog.Logger) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return def
}

// statusWriter records the status code and size of a response.
type statusWriter struct {
	http.ResponseWriter
	code  int
	bytes int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Flush lets streaming handlers push data through the wrapper.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack is passed through for completeness.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := w.ResponseWriter.(http.Hijacker); ok {
		return h.Hijack()
	}
	return nil, nil, errors.New("hijack not supported")
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// route names a request for metrics without unbounded label values.
func route(r *http.Request) string {
	switch r.URL.Path {
	case "/healthz", "/metrics":
		return r.URL.Path
	}
	if len(r.URL.Path) > 1 {
		return "app"
	}
	return "/"
}

// wrap adds a request id, a request-scoped logger, panic recovery, an
// access log line and metrics. Neither the query's secrets nor any header
// is logged: only method, path, the Cmd, status, size and duration.
func (s *Server) wrap(listener string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 64 {
			id = s.deps.NewID()
		}
		w.Header().Set("X-Request-Id", id)
		log := s.deps.Logger.With("req", id)
		r = r.WithContext(context.WithValue(r.Context(), loggerKey{}, log))
		sw := &statusWriter{ResponseWriter: w}
		rt := route(r)
		s.inflight.Inc()
		defer func() {
			s.inflight.Dec()
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.Error("panic serving request", "panic", p, "stack", string(debug.Stack()))
				if sw.code == 0 {
					http.Error(sw, "internal error", http.StatusInternalServerError)
				}
			}
			code := sw.code
			if code == 0 {
				code = http.StatusOK
			}
			d := time.Since(start)
			s.reqs.WithLabelValues(listener, rt, strconv.Itoa(code)).Inc()
			s.duration.WithLabelValues(listener, rt).Observe(d.Seconds())
			lv := slog.LevelInfo
			if rt == "/healthz" || rt == "/metrics" {
				lv = slog.LevelDebug
			}
			log.Log(r.Context(), lv, "request", "method", r.Method, "path", r.URL.Path,
				"cmd", r.URL.Query().Get("Cmd"), "status", code, "bytes", sw.bytes,
				"dur_ms", d.Milliseconds(), "remote", r.RemoteAddr, "ua", r.UserAgent())
		}()
		h.ServeHTTP(sw, r)
	})
}
