package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/store"
	"github.com/easd/easd/store/sqlite"
	"github.com/google/go-cmp/cmp"
)

// auditRows returns the rows of 'easd audit' output as fields (TIME is
// two fields: date and time), without the header.
func auditRows(t *testing.T, out string) [][]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "TIME") {
		t.Fatalf("audit output without a header:\n%s", out)
	}
	var rows [][]string
	for _, l := range lines[1:] {
		rows = append(rows, strings.Fields(l))
	}
	return rows
}

// actions returns the ACTION column of rows.
func actions(rows [][]string) []string {
	var as []string
	for _, r := range rows {
		if len(r) > 3 {
			as = append(as, r[3])
		}
	}
	return as
}

func TestAuditCommand(t *testing.T) {
	for name, environ := range stores(t) {
		t.Run(name, func(t *testing.T) {
			environ["USER"] = "ops"
			steps := [][]string{
				{"user", "add", "alice"}, {"user", "add", "bob"}, {"user", "passwd", "alice"},
				{"user", "disable", "alice"}, {"user", "enable", "alice"},
				{"user", "profile", "alice", "--title", "Boss"},
				{"user", "app-password", "add", "alice", "--label", "phone", "--device", "IPHONE1"},
				{"user", "app-password", "revoke", "alice", "1"},
				{"user", "delete", "bob"},
			}
			for _, args := range steps {
				r := easd(t, "Audit-Secret-pw\n", environ, args...)
				if r.code != 0 {
					t.Fatalf("easd %v: %+v", args, r)
				}
				// Each action is also logged (JSON: not a terminal).
				logged := false
				for line := range strings.SplitSeq(r.stderr, "\n") {
					var rec struct{ Msg, Actor, Action string }
					if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "audit" && rec.Actor == "cli:ops" && rec.Action != "" {
						logged = true
					}
				}
				if !logged {
					t.Errorf("easd %v: no audit log line on stderr:\n%s", args, r.stderr)
				}
			}
			r := easd(t, "", environ, "audit")
			if r.code != 0 {
				t.Fatalf("audit: %+v", r)
			}
			rows := auditRows(t, r.stdout)
			want := []string{"user.delete", "app-password.revoke", "app-password.add", "user.profile", "user.enable",
				"user.disable", "user.passwd", "user.add", "user.add"}
			if diff := cmp.Diff(want, actions(rows)); diff != "" {
				t.Errorf("audit actions, newest first (-want +got):\n%s\n%s", diff, r.stdout)
			}
			for _, row := range rows {
				if row[2] != "cli:ops" {
					t.Errorf("actor %q, want cli:ops: %v", row[2], row)
				}
			}
			for _, w := range []string{`IPHONE1  id 1, label "phone"`, "changed: title"} {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("audit lacks %q:\n%s", w, r.stdout)
				}
			}
			if strings.Contains(r.stdout+r.stderr, "Audit-Secret") {
				t.Errorf("a password in the audit output:\n%s", r.stdout)
			}
			// Entries outlive the user they name.
			r = easd(t, "", environ, "audit", "--user", "Bob")
			if diff := cmp.Diff([]string{"user.delete", "user.add"}, actions(auditRows(t, r.stdout))); diff != "" {
				t.Errorf("audit --user bob (-want +got):\n%s", diff)
			}
			r = easd(t, "", environ, "audit", "--limit", "2")
			if diff := cmp.Diff(want[:2], actions(auditRows(t, r.stdout))); diff != "" {
				t.Errorf("audit --limit 2 (-want +got):\n%s", diff)
			}
			r = easd(t, "", environ, "audit", "--since", "1h", "--user", "alice", "--limit", "0")
			if got := len(auditRows(t, r.stdout)); got != 7 {
				t.Errorf("audit --since 1h --user alice: %d rows, want 7:\n%s", got, r.stdout)
			}
		})
	}
}

func TestAuditSinceAndActor(t *testing.T) {
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "easd.db"), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	if _, err := st.AddAudit(context.Background(), store.AuditEntry{Time: old, Actor: "cli:x", Action: "device.block", User: "carol", Device: "D1", Detail: "two\tfields\nand a line"}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	environ := map[string]string{"EASD_DATA_DIR": dir, "SUDO_USER": "alice", "USER": "root"}
	if r := easd(t, "pw\n", environ, "user", "add", "carol"); r.code != 0 {
		t.Fatal(r)
	}
	r := easd(t, "", environ, "audit", "--since", "24h")
	rows := auditRows(t, r.stdout)
	if len(rows) != 1 || !strings.Contains(r.stdout, "cli:alice via sudo") || !strings.Contains(r.stdout, "user.add") {
		t.Errorf("audit --since 24h: want only the new user.add by cli:alice via sudo:\n%s", r.stdout)
	}
	r = easd(t, "", environ, "audit")
	if rows := auditRows(t, r.stdout); len(rows) != 2 || !strings.Contains(r.stdout, "two fields and a line") {
		t.Errorf("audit: want 2 rows, the detail on one line:\n%s", r.stdout)
	}

	// Without USER, LOGNAME or SUDO_USER: the system's name of the user.
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if got := auditActor(&env{getenv: func(string) string { return "" }}); got != "cli:"+me.Username {
		t.Errorf("actor without environment = %q, want cli:%s", got, me.Username)
	}
	if got := auditActor(&env{getenv: envMap{"LOGNAME": "lg"}.get}); got != "cli:lg" {
		t.Errorf("actor from LOGNAME = %q", got)
	}

	for _, args := range [][]string{{"audit", "extra"}, {"audit", "--limit", "-1"}, {"audit", "--since", "-1h"}, {"audit", "--user", "a b"}} {
		if r := easd(t, "", environ, args...); r.code != 2 {
			t.Errorf("easd %v = %d, want 2 (usage): %s", args, r.code, r.stderr)
		}
	}
}

// envMap is an environment; its get is a getenv function.
type envMap map[string]string

func (m envMap) get(k string) string { return m[k] }

// TestAuditWipeServe: a real server records the wipe a phone confirms
// ("device.wiped" by "server"), and logs it; 'easd audit' shows it.
func TestAuditWipeServe(t *testing.T) {
	bin := buildEasd(t)
	dir := t.TempDir()
	environ := map[string]string{"EASD_DATA_DIR": filepath.Join(dir, "data")}
	if r := easd(t, "alice-pw\n", environ, "user", "add", "alice"); r.code != 0 {
		t.Fatal(r)
	}
	certFile, keyFile := selfSignedCert(t, dir)
	cmd, addr, _, logOf := startServe(t, bin, dir, "EASD_TLS_CERT="+certFile, "EASD_TLS_KEY="+keyFile)
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(certFile)
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 30 * time.Second}
	phone, err := client.New(client.Config{URL: "https://" + addr, User: "alice", Password: "alice-pw", DeviceID: "IPHONE0042",
		DeviceType: "iPhone", HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := phone.Provision(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := easd(t, "", environ, "device", "wipe", "alice", "IPHONE0042"); r.code != 0 {
		t.Fatalf("device wipe: %+v", r)
	}
	if _, err := phone.UserInformation(t.Context()); !errors.Is(err, client.ErrWiped) {
		t.Fatalf("next request after wipe = %v, want the wipe", err)
	}
	r := easd(t, "", environ, "audit", "--user", "alice")
	var wiped []string
	for _, row := range auditRows(t, r.stdout) {
		if len(row) > 5 && row[3] == "device.wiped" {
			wiped = row
		}
	}
	if wiped == nil || wiped[2] != "server" || wiped[5] != "IPHONE0042" {
		t.Errorf("audit after the phone's wipe: want device.wiped of IPHONE0042 by server:\n%s", r.stdout)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if logs := logOf(); !strings.Contains(logs, `"msg":"audit"`) || !strings.Contains(logs, `"action":"device.wiped"`) {
		t.Errorf("no audit line in the server log:\n%s", logs)
	}
}
