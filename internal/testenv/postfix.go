package testenv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"
)

// PostfixBinary is where Debian's postfix package installs the postfix
// command; it is looked for there when postfix is not on $PATH.
const PostfixBinary = "/usr/sbin/postfix"

// PostfixDomain is the only mail domain of a test Postfix: mail to its
// users goes to Dovecot, mail to any other domain is refused or bounced.
const PostfixDomain = "example.test"

// postfixStartTimeout bounds how long Postfix may take to greet on its
// SMTP and submission ports.
const postfixStartTimeout = 20 * time.Second

// PostfixServer is a throwaway Postfix MTA started by Postfix. It listens on
// 127.0.0.1 only, without TLS, delivers mail for the users of its
// DovecotServer at Domain into their INBOX through Dovecot's LMTP, and
// delivers nowhere else.
type PostfixServer struct {
	// SMTPAddr is the host:port of its MX-style SMTP listener,
	// "127.0.0.1:<port>": it accepts mail for Domain from anyone, without
	// authentication, and refuses (554 relay access denied) any other
	// recipient domain.
	SMTPAddr string
	// SubmissionAddr is the host:port of its submission listener, which
	// accepts mail only after SASL PLAIN or LOGIN authentication as a
	// user of the DovecotServer (with its IMAP password), from any
	// sender. Mail for Domain is delivered; any other recipient is
	// refused at RCPT: 550 "no outside delivery in tests". Delivered
	// messages carry "(Authenticated sender: user)" in their Received
	// header.
	SubmissionAddr string
	// Domain is the mail domain of the users, PostfixDomain.
	Domain string
	// Dir is the directory holding its configuration, queue, data and
	// log; it is removed when the test ends.
	Dir string
}

// Postfix starts a real Postfix (Debian package postfix) on two free ports
// of 127.0.0.1, delivering into dc through dc.LMTPSocket and
// authenticating submission against dc.AuthSocket, with its own
// configuration, queue and data directories in a fresh directory that is
// removed when t ends. It reads neither /etc/postfix/main.cf nor
// master.cf, makes no DNS lookups and relays nowhere; a system Postfix, running or not, is
// neither used nor disturbed. Postfix is stopped in t.Cleanup, before dc
// (which must have been started first, with the same t or a parent), and
// its log is printed with t.Log if t failed. Several may run at once.
//
// The recipients it accepts are user@Domain for the users dc was started
// with (those without "@" in their name); others get 550 at RCPT.
//
// Postfix must run as root: its master process runs its daemons as the
// package's system user "postfix". If Postfix or Dovecot's LMTP server
// (package dovecot-lmtpd) is not installed, or the test does not run as
// root, the test is skipped, or fails when $CI is set.
func Postfix(t testing.TB, dc *DovecotServer) *PostfixServer {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("CI") != "" {
			t.Fatalf("testenv: Postfix is required when CI is set: %s", msg)
		}
		t.Skipf("testenv: Postfix unavailable: %s", msg)
	}
	bin, err := exec.LookPath("postfix")
	if err != nil {
		bin = PostfixBinary
	}
	if _, err := os.Stat(bin); err != nil {
		unavailable("apt-get install postfix: %v", err)
	}
	if dc.LMTPSocket == "" {
		unavailable("Dovecot has no LMTP server (apt-get install dovecot-lmtpd)")
	}
	if os.Geteuid() != 0 {
		unavailable("it must run as root")
	}
	owner, err := lookupPostfixOwner()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	daemonDir, err := exec.Command(filepath.Join(filepath.Dir(bin), "postconf"), "-dh", "daemon_directory").Output()
	if err != nil {
		t.Fatalf("testenv: postconf -dh daemon_directory: %v", err)
	}
	master := filepath.Join(strings.TrimSpace(string(daemonDir)), "master")

	// Postfix's unix sockets live under the queue directory: keep it
	// short, and traversable by the postfix user.
	parent := os.TempDir()
	if len(parent) > 40 {
		parent = "/tmp"
	}
	dir, err := os.MkdirTemp(parent, "easd-postfix-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	p := &PostfixServer{Domain: PostfixDomain, Dir: dir}
	conf := filepath.Join(dir, "etc")
	if err := os.Mkdir(conf, 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := owner.mkdirs(dir); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	var rcpts bytes.Buffer
	for _, u := range dc.users {
		if !strings.Contains(u, "@") {
			fmt.Fprintf(&rcpts, "%s@%s OK\n", u, PostfixDomain)
		}
	}
	if err := writePostfixFile(filepath.Join(conf, "recipients"), rcpts.Bytes()); err != nil {
		t.Fatalf("testenv: %v", err)
	}

	// The ports are picked by binding :0 and closing; another process may
	// take one before Postfix binds it, so retry on a failed start. The
	// banner carries a random token so that the readiness check cannot be
	// answered by some other server that got the port.
	var lastErr error
	for range 5 {
		smtpPort, err := freeLoopbackPort()
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		subPort, err := freeLoopbackPort()
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		if subPort == smtpPort {
			continue
		}
		token := rand.Text()
		p.SMTPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(smtpPort))
		p.SubmissionAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(subPort))
		c := postfixConfig{
			Dir: dir, SMTPPort: smtpPort, SubmissionPort: subPort,
			Banner: "easd-test-" + token, Domain: PostfixDomain,
			LMTPSocket: dc.LMTPSocket, AuthSocket: dc.AuthSocket,
		}
		if err := writePostfixTemplate(filepath.Join(conf, "main.cf"), postfixMainTemplate, c); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		if err := writePostfixTemplate(filepath.Join(conf, "master.cf"), postfixMasterTemplate, c); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		stop, err := p.start(master, conf, token)
		if err == nil {
			t.Cleanup(func() {
				if err := stop(); err != nil {
					t.Errorf("testenv: stopping Postfix: %v", err)
				}
				if t.Failed() {
					t.Logf("testenv: Postfix log (%s, %s):\n%s", p.SMTPAddr, p.SubmissionAddr, p.Log())
				}
			})
			return p
		}
		lastErr = err
		// A master that cannot bind exits before its log daemon runs,
		// without a word: see whether another process has a port.
		if !portTaken(p.SMTPAddr) && !portTaken(p.SubmissionAddr) {
			break
		}
		t.Logf("testenv: Postfix could not bind %s or %s (%v); trying other ports:\n%s", p.SMTPAddr, p.SubmissionAddr, err, p.Log())
		for _, name := range []string{"postfix.out", "postfix.log"} {
			os.Remove(filepath.Join(dir, name))
		}
	}
	t.Logf("testenv: Postfix log:\n%s", p.Log())
	t.Fatalf("testenv: starting Postfix: %v", lastErr)
	return nil
}

// start runs Postfix's master daemon in the foreground, as "postfix
// start-fg" would but as a direct child, so that SIGTERM and the parent
// death signal reach it (start-fg runs it under a shell unless that shell
// is PID 1), and waits until both listeners greet with token. It returns
// the function that stops it.
func (p *PostfixServer) start(master, conf, token string) (stop func() error, err error) {
	out, err := os.OpenFile(filepath.Join(p.Dir, "postfix.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child has its own copy
	// -s keeps the master in the foreground with stdout and stderr open.
	cmd := exec.Command(master, "-c", conf, "-s")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = filepath.Join(p.Dir, "spool")
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "MAIL_CONFIG=" + conf}
	proc, err := startChild("Postfix", cmd)
	if err != nil {
		return nil, err
	}
	stop = proc.stop

	ctx, cancel := context.WithTimeout(context.Background(), postfixStartTimeout)
	defer cancel()
	for _, addr := range []string{p.SMTPAddr, p.SubmissionAddr} {
		for {
			err := smtpGreets(ctx, addr, token)
			if err == nil {
				break
			}
			select {
			case <-proc.exited:
				return nil, proc.exitError()
			case <-ctx.Done():
				_ = stop()
				return nil, fmt.Errorf("Postfix did not greet on %s within %v: %v", addr, postfixStartTimeout, err)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return stop, nil
}

// postfixOwner is who owns Postfix's queue: its mail_owner and
// setgid_group.
type postfixOwner struct {
	uid, gid, postdropGID int
}

func lookupPostfixOwner() (postfixOwner, error) {
	u, err := user.Lookup("postfix")
	if err != nil {
		return postfixOwner{}, fmt.Errorf("system user %q of Postfix is missing (reinstall postfix): %v", "postfix", err)
	}
	g, err := user.LookupGroup("postdrop")
	if err != nil {
		return postfixOwner{}, fmt.Errorf("system group %q of Postfix is missing (reinstall postfix): %v", "postdrop", err)
	}
	var o postfixOwner
	for _, f := range []struct {
		s string
		n *int
	}{{u.Uid, &o.uid}, {u.Gid, &o.gid}, {g.Gid, &o.postdropGID}} {
		if *f.n, err = strconv.Atoi(f.s); err != nil {
			return postfixOwner{}, err
		}
	}
	return o, nil
}

// mkdirs creates the queue directory dir/spool and the data directory
// dir/data with the owners and modes of Postfix's postfix-files, as
// "postfix check" (run by "postfix start") would, but in milliseconds
// rather than seconds.
func (o postfixOwner) mkdirs(dir string) error {
	type queueDir struct {
		name     string
		uid, gid int
		mode     os.FileMode
	}
	spool := filepath.Join(dir, "spool")
	dirs := []queueDir{
		{filepath.Join(dir, "data"), o.uid, 0, 0o700},
		{spool, 0, 0, 0o755},
		{filepath.Join(spool, "pid"), 0, 0, 0o755},
		{filepath.Join(spool, "maildrop"), o.uid, o.postdropGID, 0o730},
		{filepath.Join(spool, "public"), o.uid, o.postdropGID, 0o710},
	}
	for _, name := range []string{"active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming", "private", "saved", "trace"} {
		dirs = append(dirs, queueDir{filepath.Join(spool, name), o.uid, 0, 0o700})
	}
	for _, d := range dirs {
		if err := os.Mkdir(d.name, d.mode); err != nil {
			return err
		}
		if err := os.Chown(d.name, d.uid, d.gid); err != nil {
			return err
		}
		if err := os.Chmod(d.name, d.mode); err != nil { // past the umask
			return err
		}
	}
	return nil
}

// portTaken reports whether the TCP address addr cannot be listened on.
func portTaken(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return true
	}
	l.Close()
	return false
}

// smtpGreets reports whether the server at addr answers "220 " with token.
func smtpGreets(ctx context.Context, addr, token string) error {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "220 ") || !strings.Contains(line, token) {
		return fmt.Errorf("unexpected greeting %q", line)
	}
	_, _ = c.Write([]byte("QUIT\r\n"))
	_, _ = r.ReadString('\n')
	return nil
}

// Log returns Postfix's log so far, and what its master printed to stdout
// and stderr.
func (p *PostfixServer) Log() string {
	var b strings.Builder
	for _, name := range []string{"postfix.out", "postfix.log"} {
		data, err := os.ReadFile(filepath.Join(p.Dir, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(&b, "%s: %v\n", name, err)
		}
		if len(data) > 0 {
			fmt.Fprintf(&b, "== %s\n%s", name, data)
		}
	}
	return b.String()
}

// Send sends the message raw from the envelope sender from to the
// envelope recipient to through SMTPAddr, without authentication, and
// fails t if Postfix does not accept it. Acceptance is not delivery:
// delivery into Dovecot follows within moments.
func (p *PostfixServer) Send(t testing.TB, from, to string, raw []byte) {
	t.Helper()
	if err := smtp.SendMail(p.SMTPAddr, nil, from, []string{to}, raw); err != nil {
		t.Fatalf("testenv: sending mail from %s to %s through Postfix at %s: %v", from, to, p.SMTPAddr, err)
	}
}

// postfixConfig is what postfixMainTemplate and postfixMasterTemplate need.
type postfixConfig struct {
	Dir                    string
	SMTPPort               int
	SubmissionPort         int
	Banner                 string
	Domain                 string
	LMTPSocket, AuthSocket string
}

// writePostfixFile writes a file of Postfix's configuration, dated a
// minute ago: Postfix waits for a file modified within the last second
// or two to settle before it reads it.
func writePostfixFile(name string, data []byte) error {
	if err := os.WriteFile(name, data, 0o644); err != nil {
		return err
	}
	past := time.Now().Add(-time.Minute)
	return os.Chtimes(name, past, past)
}

// writePostfixTemplate writes the file made by tmpl from data with
// writePostfixFile.
func writePostfixTemplate(name string, tmpl *template.Template, data any) error {
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		return err
	}
	return writePostfixFile(name, b.Bytes())
}

// postfixMainTemplate is a complete main.cf for Postfix 3.7: nothing of
// /etc/postfix/main.cf applies to the test instance.
var postfixMainTemplate = template.Must(template.New("main.cf").Parse(`# Written by easd's internal/testenv for one test.
compatibility_level = 3.6
queue_directory = {{.Dir}}/spool
data_directory = {{.Dir}}/data
maillog_file = {{.Dir}}/postfix.log
maillog_file_prefixes = {{.Dir}}
syslog_name = postfix-easd-test
multi_instance_enable = no
multi_instance_directories =

# Loopback only, no DNS, no outside delivery.
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
myhostname = mx.{{.Domain}}
mydomain = {{.Domain}}
myorigin = {{.Domain}}
mydestination =
relay_domains =
relayhost =
smtp_dns_support_level = disabled
disable_dns_lookups = yes
smtpd_peername_lookup = no
default_transport = error:no outside delivery in tests
relay_transport = error:no outside delivery in tests
local_transport = error:no local delivery in tests
local_recipient_maps =
alias_maps =
alias_database =
biff = no

# The users of the Dovecot test instance, delivered through its LMTP.
virtual_mailbox_domains = {{.Domain}}
virtual_mailbox_maps = texthash:{{.Dir}}/etc/recipients
virtual_transport = lmtp:unix:{{.LMTPSocket}}

smtpd_banner = $myhostname ESMTP {{.Banner}}
smtpd_tls_security_level = none
smtp_tls_security_level = none
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions =
smtpd_sasl_type = dovecot
smtpd_sasl_path = {{.AuthSocket}}
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 1000
in_flow_delay = 0
# Retry soon if Dovecot was not ready.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 4s
`))

// postfixMasterTemplate is a complete master.cf: the two listeners on
// loopback and the daemons they need, none chrooted.
var postfixMasterTemplate = template.Must(template.New("master.cf").Parse(`# Written by easd's internal/testenv for one test.
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:{{.SMTPPort}} inet n - n - - smtpd
127.0.0.1:{{.SubmissionPort}} inet n - n - - smtpd
  -o syslog_name=postfix-easd-test/submission
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_sasl_authenticated_header=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
  -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`))
