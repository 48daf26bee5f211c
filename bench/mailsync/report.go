package main

import (
	"fmt"
	"io"
	"runtime"
	"strconv"
	"time"
)

// writeReport prints the results as Markdown.
func writeReport(w io.Writer, cfg *config, counted bool, inboxCount int, results []syncResult, ka *kaResult) {
	var inboxBytes int64
	for _, r := range results {
		if r.Window == "–" && r.Err == nil {
			inboxBytes = r.Data
		}
	}
	fmt.Fprintf(w, "\n### easd mail sync benchmark (issue #5), %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "INBOX %d messages, %s MB; Sync body type %d; %d CPUs, %s/%s, %s; MB = 10^6 bytes, RSS in MiB",
		inboxCount, mb(inboxBytes), cfg.BodyType, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	if cfg.PID == 0 {
		fmt.Fprint(w, " (no -pid: RSS not measured)")
	}
	if !counted {
		fmt.Fprint(w, " (no -proxy: IMAP commands not counted)")
	}
	fmt.Fprint(w, ".\n\n")

	fmt.Fprintln(w, "| test | WindowSize | messages | with attachments | seconds | messages/s | data MB/s | wire MB/s | easd peak RSS | easd RSS | IMAP commands | easd CPU s | messages per easd CPU s |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	var notes []string
	for _, r := range results {
		if r.Err != nil {
			notes = append(notes, fmt.Sprintf("%s, WindowSize %s: %v", r.Name, r.Window, r.Err))
		}
		secs := r.Elapsed.Seconds()
		att, mem, rss, cmds := "–", "–", "–", "–"
		if r.Window != "–" {
			att = strconv.Itoa(r.Attachments)
			mem, rss = kb(r.Mem.HWM), kb(r.Mem.RSS)
			if r.Mem.HWM > 0 && !r.PeakReset {
				mem += " (since start)"
			}
			if counted {
				cmds = strconv.FormatInt(r.IMAP.Total, 10)
			}
		} else {
			cmds = "1"
		}
		name := r.Name
		if r.Err != nil {
			name += " **FAILED**"
		}
		cpu, per := "–", "–"
		if r.CPU > 0 {
			cpu, per = fmt.Sprintf("%.2f", r.CPU.Seconds()), rate(float64(r.Messages), r.CPU.Seconds())
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %.2f | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			name, r.Window, r.Messages, att, secs, rate(float64(r.Messages), secs), mbRate(r.Data, secs), mbRate(r.Wire, secs), mem, rss, cmds, cpu, per)
	}
	if counted {
		fmt.Fprintln(w)
		for _, r := range results {
			if r.Window != "–" {
				fmt.Fprintf(w, "- IMAP commands of the initial Sync, WindowSize %s: %s (%d connections, %s MB from IMAP).\n",
					r.Window, r.IMAP.Top(8), r.IMAP.Opened, mb(r.IMAP.Down))
			}
		}
	}

	if ka != nil {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| test | clients | accounts | folder items | requests | seconds | req/s | p50 ms | p99 ms | errors | IMAP commands | IMAP commands/req | easd peak RSS | easd RSS | easd CPU s | requests per easd CPU s |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		secs := ka.Elapsed.Seconds()
		cmds, per := "–", "–"
		if counted {
			cmds = strconv.FormatInt(ka.IMAP.Total, 10)
			if ka.Requests > 0 {
				per = fmt.Sprintf("%.2f", float64(ka.IMAP.Total)/float64(ka.Requests))
			}
		}
		name := "unchanged-folder Sync, keep-alive"
		if ka.Err != nil {
			name += " **FAILED**"
			notes = append(notes, fmt.Sprintf("keep-alive: %v", ka.Err))
		} else if ka.LastErr != nil {
			notes = append(notes, fmt.Sprintf("keep-alive: %d failed requests, the last: %v", ka.Errors, ka.LastErr))
		}
		if ka.Changed > 0 {
			notes = append(notes, fmt.Sprintf("keep-alive: %d responses carried items: the folder was not unchanged", ka.Changed))
		}
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %.2f | %s | %s | %s | %d | %s | %s | %s | %s | %s | %s |\n",
			name, ka.Clients, ka.Users, ka.FolderItems, ka.Requests, secs, rate(float64(ka.Requests), secs),
			ms(ka.P50), ms(ka.P99), ka.Errors, cmds, per, kb(ka.Mem.HWM), kb(ka.Mem.RSS), fmt.Sprintf("%.2f", ka.CPU.Seconds()), rate(float64(ka.Requests), ka.CPU.Seconds()))
		if counted {
			fmt.Fprintf(w, "\n- IMAP commands during the keep-alive test: %s (%d new connections).\n", ka.IMAP.Top(8), ka.IMAP.Opened)
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
	}
}

func rate(n, secs float64) string {
	if secs <= 0 || n == 0 {
		return "–"
	}
	return strconv.FormatFloat(n/secs, 'f', 0, 64)
}

func mbRate(b int64, secs float64) string {
	if secs <= 0 || b == 0 {
		return "–"
	}
	return strconv.FormatFloat(float64(b)/1e6/secs, 'f', 1, 64)
}

func mb(b int64) string { return strconv.FormatFloat(float64(b)/1e6, 'f', 1, 64) }

func kb(k int64) string {
	if k <= 0 {
		return "–"
	}
	return strconv.FormatFloat(float64(k)/1024, 'f', 1, 64)
}

func ms(d time.Duration) string {
	if d == 0 {
		return "–"
	}
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64)
}
