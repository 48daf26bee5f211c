package push

import (
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/easd/easd/bench/internal/easdproc"
)

// startEasd runs `easd serve --auth imap` against imapAddr with extra
// flags (easdproc.Start); easd dies with the test process. EASD_BENCH_LOG,
// if set, names a file to copy its log to (suffixed with tag).
func startEasd(t *testing.T, bin, imapAddr string, extra []string, tag string) *easdproc.Proc {
	t.Helper()
	o := easdproc.Options{Bin: bin, IMAPAddr: imapAddr, Args: extra,
		Setup: func(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }}
	if keep := os.Getenv("EASD_BENCH_LOG"); keep != "" {
		o.LogCopy = keep + "." + tag
	}
	return easdproc.Start(t, o)
}
