package push

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Memory is a process's memory use from /proc/PID/status, in KiB (0:
// unknown).
type Memory struct{ RSS, HWM int64 }

// ReadMemory reads VmRSS and VmHWM of pid.
func ReadMemory(pid int) Memory {
	var m Memory
	if pid <= 0 {
		return m
	}
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmHWM":
			m.HWM = n
		case "VmRSS":
			m.RSS = n
		}
	}
	return m
}

// ReadCPU returns the CPU time (user + system) pid has used, from
// /proc/PID/stat; 0 when unknown.
func ReadCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	f := statFields(pid)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)        // utime, field 14
	st, _ := strconv.ParseInt(f[12], 10, 64)        // stime, field 15
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// statFields returns the fields of /proc/PID/stat after the command name
// (field 3 onwards).
func statFields(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

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
		f := statFields(pid)
		if len(f) < 2 || !parents[f[1]] {
			continue // f[1] is the parent's pid
		}
		comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		if strings.TrimSpace(string(comm)) != name {
			continue
		}
		ps.Count++
		ps.RSS += ReadMemory(pid).RSS
		ps.PSS += readPSS(pid)
	}
	return ps
}
