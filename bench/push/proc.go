package push

import (
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/easd/easd/bench/internal/procstat"
)

// RaiseOpenFiles raises the soft limit of open files to the hard limit
// and returns the new soft limit.
func RaiseOpenFiles() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
	}
	return lim.Cur, nil
}

// Processes describes the children of one process by command name.
type Processes struct {
	// Count, RSS and PSS (KiB, summed; PSS shares shared pages out among
	// the processes mapping them) of the children named Name.
	Name     string
	Count    int
	RSS, PSS int64
}

// readPSS returns the Pss of pid from /proc/PID/smaps_rollup, in KiB.
func readPSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Pss:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// ChildProcesses counts the child processes of the process whose command
// line contains match (e.g. a Dovecot master by its configuration path)
// that are named name (e.g. "imap"), and sums their RSS.
func ChildProcesses(match, name string) Processes {
	ps := Processes{Name: name}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return ps
	}
	parents := map[string]bool{}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		pids = append(pids, pid)
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(cmd), match) {
			parents[e.Name()] = true
		}
	}
	for _, pid := range pids {
		f := procstat.StatFields(pid)
		if len(f) < 2 || !parents[f[1]] {
			continue // f[1] is the parent's pid
		}
		comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		if strings.TrimSpace(string(comm)) != name {
			continue
		}
		ps.Count++
		ps.RSS += procstat.ReadMemory(pid).RSS
		ps.PSS += readPSS(pid)
	}
	return ps
}
