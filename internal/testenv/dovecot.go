package testenv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"
)

// DovecotBinary is where Debian's dovecot-imapd package installs Dovecot;
// Dovecot looks for it there when dovecot is not on $PATH.
const DovecotBinary = "/usr/sbin/dovecot"

// DovecotLMTPBinary is Dovecot's LMTP server, from Debian's dovecot-lmtpd
// package. Without it Dovecot runs without LMTP (LMTPSocket is empty) and
// Postfix cannot deliver into it.
const DovecotLMTPBinary = "/usr/lib/dovecot/lmtp"

// dovecotStartTimeout bounds how long Dovecot may take to answer its first
// greeting.
const dovecotStartTimeout = 15 * time.Second

// DovecotServer is a throwaway Dovecot IMAP server started by Dovecot. It
// listens on 127.0.0.1 only, without TLS, and accepts LOGIN in plain text.
type DovecotServer struct {
	// Addr is the host:port of its IMAP listener, "127.0.0.1:<port>".
	Addr string
	// LMTPSocket is the path of its LMTP unix socket (mode 0666), through
	// which an MTA delivers into the users' INBOX; "" when Dovecot's LMTP
	// server (package dovecot-lmtpd) is not installed. LMTP takes the
	// recipient's local part as the user name: RCPT TO:<alice@any.domain>
	// delivers to user "alice".
	LMTPSocket string
	// AuthSocket is the path of its authentication client socket (mode
	// 0666), for SASL authentication by an MTA ("smtpd_sasl_type =
	// dovecot" in Postfix) against the same users as IMAP.
	AuthSocket string
	// Dir is the directory holding its configuration, passwd file, log,
	// sockets and mail; it is removed when the test ends.
	Dir string
	// MasterUser and MasterPassword log in as any user with the login
	// "user*MasterUser" (a Dovecot master user: a service account).
	MasterUser, MasterPassword string

	mailUID, mailGID int
	// users are the user names, in lower case.
	users []string

	// bin and token start it again (Start); stop stops the running
	// instance, nil while stopped.
	bin, token string
	runMu      sync.Mutex
	stop       func() error
}

// dovecotIdentity is who the Dovecot processes run as.
type dovecotIdentity struct {
	InternalUser, InternalGroup, LoginUser string
	MailUID, MailGID                       int
}

// Dovecot starts a real Dovecot (Debian package dovecot-imapd) in the
// foreground as a child process, on a free port of 127.0.0.1, with its own
// configuration, a passwd-file passdb and userdb holding users (name ->
// clear password), and Maildir storage, everything in a fresh directory
// that is removed when t ends. Each user has the SPECIAL-USE folders
// Drafts, Sent, Trash and Junk, created on first use; the hierarchy
// delimiter is ".", as Maildir++ has it. Dovecot is stopped in t.Cleanup,
// and its log is printed with t.Log if t failed. Several servers may run at once.
//
// User names are case-insensitive, as with Dovecot's default
// auth_username_format (%Lu): they are stored in lower case. They may hold
// only the characters of Dovecot's default auth_username_chars (ASCII
// letters and digits, ".-_@"); Dovecot rejects any other login name.
// Passwords may be any bytes but NUL. Failed logins are answered within
// half a second (no auth_failure_delay, no auth penalty).
//
// Run as root, the mail processes run as the package's system user
// "dovecot" and the login processes as "dovenull"; run as another user,
// everything runs as that user.
//
// If Dovecot is not installed the test is skipped, or fails when $CI is
// set, so that CI never silently skips IMAP tests.
func Dovecot(t testing.TB, users map[string]string) *DovecotServer {
	t.Helper()
	return DovecotWith(t, users, DovecotOptions{})
}

// DovecotOptions change the configuration DovecotWith writes; the zero
// value is Dovecot's.
type DovecotOptions struct {
	// MaxConnections, when > 0, lets that many IMAP connections be open
	// at once (for load tests): it raises the imap service's
	// process_limit (Dovecot's default 1024; one process per connection)
	// and the client limits of the services every connection talks to
	// (imap-login, auth, anvil) to match. The processes need RAM: a few
	// MB each.
	MaxConnections int
	// MaxUserIPConnections, when > 0, is mail_max_userip_connections:
	// the IMAP connections one user may have open from one address
	// (Dovecot's default 10).
	MaxUserIPConnections int
}

// DovecotWith is Dovecot with the configuration changed by opts; see
// Dovecot.
func DovecotWith(t testing.TB, users map[string]string, opts DovecotOptions) *DovecotServer {
	t.Helper()
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		bin = DovecotBinary
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("testenv: Dovecot (package dovecot-imapd) is required when CI is set: %v", err)
		}
		t.Skipf("testenv: Dovecot unavailable (apt-get install dovecot-imapd): %v", err)
	}
	id, err := currentDovecotIdentity()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}

	// Dovecot's unix sockets live in base_dir, whose path must stay well
	// below the ~108 bytes of sun_path: t.TempDir() can be much longer
	// and is not traversable by the unprivileged Dovecot users, so use a
	// short directory of our own.
	parent := os.TempDir()
	if len(parent) > 40 {
		parent = "/tmp"
	}
	dir, err := os.MkdirTemp(parent, "easd-dovecot-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	d := &DovecotServer{Dir: dir, mailUID: id.MailUID, mailGID: id.MailGID}
	for u := range users {
		d.users = append(d.users, strings.ToLower(u))
	}
	slices.Sort(d.users)
	d.AuthSocket = filepath.Join(dir, "run", "auth-easd")
	lmtp := false
	if _, err := os.Stat(DovecotLMTPBinary); err == nil {
		lmtp = true
		d.LMTPSocket = filepath.Join(dir, "run", "lmtp")
	}
	if err := d.mkdirMail(filepath.Join(dir, "mail")); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := writePasswdFile(filepath.Join(dir, "passwd"), users); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	d.MasterUser, d.MasterPassword = "easd-master", "master-"+rand.Text()
	if err := writePasswdFile(filepath.Join(dir, "master-passwd"), map[string]string{d.MasterUser: d.MasterPassword}); err != nil {
		t.Fatalf("testenv: %v", err)
	}

	// The port is picked by binding :0 and closing; another process may
	// take it before Dovecot binds it, so retry on a failed start. The
	// greeting carries a random token so that the readiness check cannot
	// be answered by some other server that got the port.
	var lastErr error
	for range 5 {
		port, err := freeLoopbackPort()
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		token := rand.Text()
		d.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := writeDovecotConfig(filepath.Join(dir, "dovecot.conf"), dovecotConfig{
			Dir: dir, Port: port, Greeting: "easd-test-" + token, LMTP: lmtp, dovecotIdentity: id,
			MaxConns: max(opts.MaxConnections, 0), MaxUserIPConns: max(opts.MaxUserIPConnections, 0),
		}); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		stop, err := d.start(bin, token)
		if err == nil {
			d.bin, d.token, d.stop = bin, token, stop
			t.Cleanup(func() {
				if err := d.Stop(); err != nil && !errors.Is(err, errDovecotStopped) {
					t.Errorf("testenv: stopping Dovecot: %v", err)
				}
				if t.Failed() {
					t.Logf("testenv: Dovecot log (%s):\n%s", d.Addr, d.Log())
				}
			})
			return d
		}
		lastErr = err
		log := d.Log()
		if !strings.Contains(log, "Address already in use") {
			break
		}
		t.Logf("testenv: Dovecot could not bind %s; trying another port:\n%s", d.Addr, log)
		for _, name := range []string{"dovecot.out", "dovecot.log"} {
			os.Remove(filepath.Join(dir, name))
		}
	}
	t.Logf("testenv: Dovecot log:\n%s", d.Log())
	t.Fatalf("testenv: starting Dovecot: %v", lastErr)
	return nil
}

// start runs Dovecot in the foreground and waits until it greets with
// token. It returns the function that stops it.
func (d *DovecotServer) start(bin, token string) (stop func() error, err error) {
	out, err := os.OpenFile(filepath.Join(d.Dir, "dovecot.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child has its own copy
	cmd := exec.Command(bin, "-F", "-c", filepath.Join(d.Dir, "dovecot.conf"))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = d.Dir
	proc, err := startChild("Dovecot", cmd)
	if err != nil {
		return nil, err
	}
	stop = proc.stop

	ctx, cancel := context.WithTimeout(context.Background(), dovecotStartTimeout)
	defer cancel()
	for {
		err := greets(ctx, d.Addr, token)
		if err == nil {
			return stop, nil
		}
		select {
		case <-proc.exited:
			return nil, proc.exitError()
		case <-ctx.Done():
			_ = stop()
			return nil, fmt.Errorf("Dovecot did not greet on %s within %v: %v", d.Addr, dovecotStartTimeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// errDovecotStopped is Stop's error when Dovecot is not running.
var errDovecotStopped = errors.New("Dovecot is not running")

// Stop stops Dovecot as "systemctl stop dovecot" does: the master and
// every process it started (IMAP sessions, LMTP, auth) get SIGTERM at
// once, so clients lose their connections. Dovecot's master alone would leave
// IMAP processes serving their clients (Linux only: they are found as
// the master's children in /proc). Mail and configuration stay; Start
// runs it again.
func (d *DovecotServer) Stop() error {
	d.runMu.Lock()
	defer d.runMu.Unlock()
	if d.stop == nil {
		return errDovecotStopped
	}
	stop := d.stop
	d.stop = nil
	var kids []procID
	if b, err := os.ReadFile(filepath.Join(d.Dir, "run", "master.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			kids = childProcs(pid)
		}
	}
	// All at once, as systemd signals every process of the service.
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	err := endProcs(kids, 5*time.Second)
	return errors.Join(<-stopped, err)
}

// procID names a process: pid and start time (clock ticks after boot),
// so that a reused pid is not taken for it.
type procID struct {
	pid   int
	start string
}

// procStat returns the parent pid and start time of pid from
// /proc/PID/stat; ok is false if it is gone or a zombie (exited, not yet
// reaped), or there is no /proc.
func procStat(pid int) (ppid int, start string, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, "", false
	}
	// "pid (comm) state ppid ...": comm may hold anything but ends
	// at the last ')'; the start time is field 22.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, "", false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || f[0] == "Z" {
		return 0, "", false
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[19], err == nil
}

// childProcs lists the children of pid.
func childProcs(pid int) []procID {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var kids []procID
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, start, ok := procStat(p); ok && ppid == pid {
			kids = append(kids, procID{p, start})
		}
	}
	return kids
}

// endProcs sends SIGTERM to the processes of ps still running, and
// SIGKILL to those still there after grace.
func endProcs(ps []procID, grace time.Duration) error {
	alive := func(p procID) bool {
		_, start, ok := procStat(p.pid)
		return ok && start == p.start
	}
	signal := func(sig syscall.Signal) (left []procID) {
		for _, p := range ps {
			if alive(p) {
				_ = syscall.Kill(p.pid, sig)
				left = append(left, p)
			}
		}
		return left
	}
	ps = signal(syscall.SIGTERM)
	for deadline := time.Now().Add(grace); len(ps) > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		ps = slices.DeleteFunc(ps, func(p procID) bool { return !alive(p) })
	}
	if left := signal(syscall.SIGKILL); len(left) > 0 {
		return fmt.Errorf("%d Dovecot processes did not stop within %v of SIGTERM; killed", len(left), grace)
	}
	return nil
}

// Start starts the stopped Dovecot again, on the same port with the same
// configuration, users and mail, and waits until it greets.
func (d *DovecotServer) Start() error {
	d.runMu.Lock()
	defer d.runMu.Unlock()
	if d.stop != nil {
		return errors.New("Dovecot is already running")
	}
	stop, err := d.start(d.bin, d.token)
	if err != nil {
		return err
	}
	d.stop = stop
	return nil
}

// Restart is Stop then Start: every client connection is cut, and the
// server answers again on the same address, as after "systemctl restart
// dovecot".
func (d *DovecotServer) Restart() error {
	if err := d.Stop(); err != nil {
		return err
	}
	return d.Start()
}

// greets reports whether the server at addr answers "* OK" with token.
func greets(ctx context.Context, addr, token string) error {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "* OK ") || !strings.Contains(line, token) {
		return fmt.Errorf("unexpected greeting %q", line)
	}
	_, _ = c.Write([]byte("x LOGOUT\r\n"))
	return nil
}

// setParentDeathSignal makes the kernel kill the child when the test binary
// dies without running its cleanups (e.g. on a go test timeout). Only Linux
// and FreeBSD have the field; elsewhere this does nothing.
func setParentDeathSignal(attr *syscall.SysProcAttr) {
	f := reflect.ValueOf(attr).Elem().FieldByName("Pdeathsig")
	if f.IsValid() && f.CanSet() && reflect.TypeOf(os.Kill).ConvertibleTo(f.Type()) {
		f.Set(reflect.ValueOf(os.Kill).Convert(f.Type()))
	}
}

// Log returns Dovecot's log so far, and what it printed to stdout and
// stderr.
func (d *DovecotServer) Log() string {
	var b strings.Builder
	for _, name := range []string{"dovecot.out", "dovecot.log"} {
		data, err := os.ReadFile(filepath.Join(d.Dir, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(&b, "%s: %v\n", name, err)
		}
		if len(data) > 0 {
			fmt.Fprintf(&b, "== %s\n%s", name, data)
		}
	}
	return b.String()
}

// Maildir returns the Maildir++ root of user (the INBOX; other folders are
// its subdirectories ".Name"). It exists once the user has logged in or a
// message was delivered with Deliver.
func (d *DovecotServer) Maildir(user string) string {
	return filepath.Join(d.Dir, "mail", strings.ToLower(user))
}

// Deliver puts the message raw into folder of user ("" or "INBOX" for the
// inbox, otherwise a Maildir++ folder name such as "Sent" or "Work.Old",
// created if needed) as a new, unseen message, owned by the user Dovecot
// reads mail as, and returns its file name. It does not talk to Dovecot,
// which sees the message at its next look at the folder.
func (d *DovecotServer) Deliver(t testing.TB, user, folder string, raw []byte) string {
	t.Helper()
	dir := d.Maildir(user)
	if err := d.mkdirMail(dir); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if folder != "" && !strings.EqualFold(folder, "INBOX") {
		dir = filepath.Join(dir, "."+folder)
		if err := d.mkdirMail(dir); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		if err := d.writeMailFile(filepath.Join(dir, "maildirfolder"), nil); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := d.mkdirMail(filepath.Join(dir, sub)); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	name := fmt.Sprintf("%d.%s.easd-test", time.Now().Unix(), rand.Text())
	tmp := filepath.Join(dir, "tmp", name)
	if err := d.writeMailFile(tmp, raw); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "new", name)); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return name
}

// mkdirMail creates dir, if missing, owned by the mail user.
func (d *DovecotServer) mkdirMail(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil
		}
		return err
	}
	return d.chownMail(dir)
}

// writeMailFile writes a file owned by the mail user.
func (d *DovecotServer) writeMailFile(name string, data []byte) error {
	if err := os.WriteFile(name, data, 0o600); err != nil {
		return err
	}
	return d.chownMail(name)
}

func (d *DovecotServer) chownMail(name string) error {
	if os.Geteuid() != 0 {
		return nil // everything already belongs to the mail user
	}
	return os.Chown(name, d.mailUID, d.mailGID)
}

// currentDovecotIdentity returns who Dovecot's processes should run as.
// Dovecot refuses root for mail processes and its login and internal
// processes should not be root either; as root we use the system users
// that the dovecot-core package creates. As another user, Dovecot runs
// everything as that user.
func currentDovecotIdentity() (dovecotIdentity, error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return dovecotIdentity{}, err
		}
		g, err := user.LookupGroupId(strconv.Itoa(os.Getegid()))
		if err != nil {
			return dovecotIdentity{}, err
		}
		return dovecotIdentity{u.Username, g.Name, u.Username, os.Geteuid(), os.Getegid()}, nil
	}
	for _, name := range []string{"dovecot", "dovenull"} {
		if _, err := user.Lookup(name); err != nil {
			return dovecotIdentity{}, fmt.Errorf("system user %q of Dovecot is missing (reinstall dovecot-core): %v", name, err)
		}
	}
	u, _ := user.Lookup("dovecot")
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return dovecotIdentity{}, err
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return dovecotIdentity{}, err
	}
	return dovecotIdentity{"dovecot", "dovecot", "dovenull", uid, gid}, nil
}

// dovecotUsernameChars is the default of Dovecot's auth_username_chars
// (which spells the digits "01234567890").
const dovecotUsernameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_@"

// writePasswdFile writes a Dovecot passwd-file with users; passwords are
// stored as {PLAIN.BASE64} so that any byte may appear in them.
func writePasswdFile(name string, users map[string]string) error {
	var b bytes.Buffer
	for u, pw := range users {
		if u == "" || strings.Trim(u, dovecotUsernameChars) != "" {
			return fmt.Errorf("user name %q has characters outside Dovecot's auth_username_chars %q", u, dovecotUsernameChars)
		}
		if strings.ContainsRune(pw, 0) {
			return fmt.Errorf("password of %q holds a NUL byte", u)
		}
		fmt.Fprintf(&b, "%s:{PLAIN.BASE64}%s::::::\n", strings.ToLower(u), base64.StdEncoding.EncodeToString([]byte(pw)))
	}
	// Dovecot's auth process reads it as the unprivileged internal user.
	return os.WriteFile(name, b.Bytes(), 0o644)
}

// freeLoopbackPort returns a TCP port of 127.0.0.1 that was free a moment
// ago.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// dovecotConfig is what dovecotConfTemplate needs.
type dovecotConfig struct {
	Dir      string
	Port     int
	Greeting string
	// LMTP enables the LMTP server.
	LMTP bool
	// MaxConns and MaxUserIPConns are DovecotOptions' MaxConnections
	// and MaxUserIPConnections; 0 keeps Dovecot's defaults.
	MaxConns, MaxUserIPConns int
	dovecotIdentity
}

// IMAPLimit is the imap process_limit for MaxConns: never below
// Dovecot's default 1024.
func (c dovecotConfig) IMAPLimit() int { return max(1024, c.MaxConns) }

// LoginLimit is the imap-login process_limit for MaxConns: logins are
// brief (one process per login, gone once the user is logged in), so a
// tenth of the connections may log in at once, at least 100 (Dovecot's
// default).
func (c dovecotConfig) LoginLimit() int { return max(100, c.MaxConns/10) }

// ClientLimit is the client_limit of the services that hear from every
// imap and imap-login process (anvil, auth), with room to spare.
func (c dovecotConfig) ClientLimit() int { return 2*c.IMAPLimit() + c.LoginLimit() + 100 }

func writeDovecotConfig(name string, c dovecotConfig) error {
	var b bytes.Buffer
	if err := dovecotConfTemplate.Execute(&b, c); err != nil {
		return err
	}
	return os.WriteFile(name, b.Bytes(), 0o644)
}

// dovecotConfTemplate is a complete Dovecot 2.3 configuration: it includes
// nothing from /etc/dovecot, so a system Dovecot's settings neither help nor
// disturb it.
var dovecotConfTemplate = template.Must(template.New("dovecot.conf").Parse(`# Written by easd's internal/testenv for one test.
protocols = imap{{if .LMTP}} lmtp{{end}}
listen = 127.0.0.1
base_dir = "{{.Dir}}/run"
state_dir = "{{.Dir}}/state"
log_path = "{{.Dir}}/dovecot.log"
login_greeting = {{.Greeting}}

ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# Answer failed logins at once: tests try wrong passwords on purpose.
auth_failure_delay = 0
{{- if .MaxUserIPConns}}
protocol imap {
  mail_max_userip_connections = {{.MaxUserIPConns}}
}
{{- end}}
{{- if .MaxConns}}
# Many connections at once (DovecotOptions.MaxConnections).
default_client_limit = {{.ClientLimit}}
service imap {
  process_limit = {{.IMAPLimit}}
}
{{- end}}

default_internal_user = {{.InternalUser}}
default_internal_group = {{.InternalGroup}}
default_login_user = {{.LoginUser}}
first_valid_uid = {{.MailUID}}
last_valid_uid = {{.MailUID}}
first_valid_gid = {{.MailGID}}
last_valid_gid = {{.MailGID}}

mail_location = maildir:{{.Dir}}/mail/%u
# CONDSTORE and QRESYNC are built into Dovecot 2.3's imap and need no
# plugin; the list is spelled out so that plugins can be added here.
mail_plugins = $mail_plugins

# The usual SPECIAL-USE folders (RFC 6154), created and subscribed on
# first use; the hierarchy delimiter stays Maildir++'s ".".
namespace inbox {
  inbox = yes
  mailbox Drafts {
    special_use = \Drafts
    auto = subscribe
  }
  mailbox Sent {
    special_use = \Sent
    auto = subscribe
  }
  mailbox Trash {
    special_use = \Trash
    auto = subscribe
  }
  mailbox Junk {
    special_use = \Junk
    auto = subscribe
  }
}

# A master user (service account) logs in as any user: "alice*easd-master".
auth_master_user_separator = *
passdb {
  driver = passwd-file
  args = "{{.Dir}}/master-passwd"
  master = yes
}
passdb {
  driver = passwd-file
  args = "{{.Dir}}/passwd"
}
userdb {
  driver = passwd-file
  args = "{{.Dir}}/passwd"
  default_fields = uid={{.MailUID}} gid={{.MailGID}} home={{.Dir}}/mail/%u
}

# No chroot: it needs root, and buys nothing here.
service imap-login {
  chroot =
{{- if .MaxConns}}
  process_limit = {{.LoginLimit}}
{{- end}}
  inet_listener imap {
    address = 127.0.0.1
    port = {{.Port}}
  }
  inet_listener imaps {
    port = 0
  }
}
# For SASL authentication by a test MTA (Postfix's smtpd runs as "postfix").
service auth {
  unix_listener auth-easd {
    mode = 0666
  }
{{- if .MaxConns}}
  client_limit = {{.ClientLimit}}
{{- end}}
}
{{if .LMTP}}
service lmtp {
  unix_listener lmtp {
    mode = 0666
  }
}
protocol lmtp {
  # RCPT TO:<alice@example.test> is user "alice".
  auth_username_format = %Ln
}
{{end}}
service anvil {
  chroot =
{{- if .MaxConns}}
  client_limit = {{.ClientLimit}}
{{- end}}
  # No growing delay after failed logins from 127.0.0.1.
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
`))
