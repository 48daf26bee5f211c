package imapbridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/easd/easd/eas"
	"github.com/easd/easd/internal/testenv"
	storedb "github.com/easd/easd/store"
)

// smtpEnv is a Dovecot with alice and bob and a Postfix delivering into it.
type smtpEnv struct {
	d *testenv.DovecotServer
	p *testenv.PostfixServer
}

func newSMTPEnv(t *testing.T) *smtpEnv {
	t.Helper()
	d := testenv.Dovecot(t, map[string]string{"alice": "alice-pw", "bob": "bob-pw"})
	return &smtpEnv{d: d, p: testenv.Postfix(t, d)}
}

func (e *smtpEnv) submitter(cfg SMTPConfig) *Submitter {
	cfg.Addr, cfg.TLS = e.p.SubmissionAddr, TLSNone
	return NewSubmitter(cfg, SubmitterOptions{})
}

func alice(pw string) eas.MailAccount {
	return eas.MailAccount{User: storedb.User{Name: "alice"}, Login: "alice", Password: pw}
}

func mail(subject, to string) string {
	return fmt.Sprintf("From: alice@example.test\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@example.test>\r\n\r\nHello %s\r\n",
		to, subject, strings.ReplaceAll(subject, " ", "."), subject)
}

// waitSubjects waits until user's INBOX holds a message with subject
// last, and returns the subjects of all its messages.
func waitSubjects(t *testing.T, c *imapclient.Client, last string) []string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatal(err)
		}
		var msgs []*imapclient.FetchMessageBuffer
		if sel.NumMessages > 0 {
			var set imap.SeqSet
			set.AddRange(1, 0)
			if msgs, err = c.Fetch(set, &imap.FetchOptions{Envelope: true}).Collect(); err != nil {
				t.Fatal(err)
			}
		}
		var subjects []string
		for _, m := range msgs {
			subjects = append(subjects, m.Envelope.Subject)
		}
		for _, s := range subjects {
			if s == last {
				return subjects
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q not delivered; INBOX has %q", last, subjects)
		}
	}
}

func TestSMTPSubmit(t *testing.T) {
	e := newSMTPEnv(t)
	s := e.submitter(SMTPConfig{})
	ctx := ctx10s(t)
	if err := s.Submit(ctx, alice("alice-pw"), "alice@example.test", []string{"bob@example.test"}, strings.NewReader(mail("first", "bob@example.test"))); err != nil {
		t.Fatal(err)
	}
	bob := loggedIn(t, e.d.Addr, "bob", "bob-pw")
	waitSubjects(t, bob, "first")

	// Refused recipients: all or nothing.
	for _, to := range [][]string{{"nobody@example.test"}, {"x@elsewhere.test"}, {"bob@example.test", "nobody@example.test"}} {
		err := s.Submit(ctx, alice("alice-pw"), "alice@example.test", to, strings.NewReader(mail("refused", to[0])))
		if !errors.Is(err, eas.ErrRecipientRefused) || !strings.Contains(err.Error(), to[len(to)-1]) || strings.Contains(err.Error(), "<bob@") {
			t.Errorf("Submit to %v: %v, want ErrRecipientRefused naming the refused one", to, err)
		}
	}
	// Wrong password.
	err := s.Submit(ctx, alice("wrong"), "alice@example.test", []string{"bob@example.test"}, strings.NewReader(mail("wrong", "bob@example.test")))
	if !errors.Is(err, eas.ErrBadCredentials) || !errors.Is(err, ErrBadCredentials) {
		t.Errorf("wrong password: %v", err)
	}
	// The service account submits as the user, without their password.
	m := e.submitter(SMTPConfig{MasterUser: e.d.MasterUser, MasterPassword: e.d.MasterPassword})
	if err := m.Submit(ctx, alice(""), "alice@example.test", []string{"bob@example.test"}, strings.NewReader(mail("by master", "bob@example.test"))); err != nil {
		t.Fatalf("master user: %v", err)
	}
	got := waitSubjects(t, bob, "by master")
	if strings.Join(got, ",") != "first,by master" {
		t.Errorf("bob's INBOX: %q, want first and by master only", got)
	}

	// Unreachable, and an ended context.
	dead := NewSubmitter(SMTPConfig{Addr: "127.0.0.1:1", TLS: TLSNone}, SubmitterOptions{})
	if err := dead.Submit(ctx, alice("alice-pw"), "a@example.test", []string{"b@example.test"}, strings.NewReader("x")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("unreachable: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Submit(cctx, alice("alice-pw"), "a@example.test", []string{"b@example.test"}, strings.NewReader("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if err := NewSubmitter(SMTPConfig{Addr: "nohost", TLS: TLSNone}, SubmitterOptions{}).Submit(ctx, alice("x"), "a@b", []string{"c@d"}, strings.NewReader("x")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("bad config: %v", err)
	}
	// STARTTLS required but not offered by the test Postfix.
	st := NewSubmitter(SMTPConfig{Addr: e.p.SubmissionAddr, TLS: TLSStartTLS}, SubmitterOptions{})
	if err := st.Submit(ctx, alice("alice-pw"), "alice@example.test", []string{"bob@example.test"}, strings.NewReader("x")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("STARTTLS not offered: %v", err)
	}
}
