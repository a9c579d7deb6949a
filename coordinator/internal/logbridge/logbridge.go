// Package logbridge routes the log lines of the hashicorp libraries
// (memberlist's log.Logger, raft's hclog) to slog. Package client uses it
// for memberlist and package coordinator for raft; it is internal because
// it is plumbing, not API.
package logbridge

import (
	"context"
	"io"
	"log/slog"
	"strings"
)

// Writer turns each written line into one slog record on L; lines tagged
// [ERROR] or [WARN] keep their level, and the "use of closed network
// connection" lines of our own shutdowns drop to debug.
type Writer struct{ L *slog.Logger }

var _ io.Writer = Writer{}

func (w Writer) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		lvl := slog.LevelInfo
		switch {
		case strings.Contains(line, "use of closed network connection"):
			lvl = slog.LevelDebug // connections closed by our own shutdown
		case strings.Contains(line, "[ERROR]") || strings.Contains(line, "[ERR]"):
			lvl = slog.LevelError
		case strings.Contains(line, "[WARN]"):
			lvl = slog.LevelWarn
		case strings.Contains(line, "[DEBUG]") || strings.Contains(line, "[TRACE]"):
			lvl = slog.LevelDebug
		}
		w.L.Log(context.Background(), lvl, line)
	}
	return len(p), nil
}
