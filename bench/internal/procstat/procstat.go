// Package procstat reads a process's memory and CPU use from Linux's
// /proc, for the benchmarks (bench/mailsync, bench/push). Elsewhere, and
// for a process that is gone, the figures are 0.
package procstat

import (
	"bufio"
	"os"
	"strconv"
	"strings"
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
	f := StatFields(pid)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)        // utime, field 14
	st, _ := strconv.ParseInt(f[12], 10, 64)        // stime, field 15
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// StatFields returns the fields of /proc/PID/stat after the command name
// (field 3 onwards: the state, then the parent's pid …); nil when
// unknown.
func StatFields(pid int) []string {
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
