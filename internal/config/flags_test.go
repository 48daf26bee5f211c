package config

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestEnvDefaultsAndFlagsWin(t *testing.T) {
	env := map[string]string{"EASD_LISTEN": ":9999", "EASD_DEBUG": "true", "EASD_N": "7", "EASD_T": "3s"}
	var out bytes.Buffer
	fs := NewFlagSet("x", "x [flags]", func(k string) string { return env[k] }, &out)
	listen := fs.String("listen", "EASD_LISTEN", ":8080", "address")
	other := fs.String("other", "EASD_OTHER", "def", "unset env keeps the default")
	debug := fs.Bool("debug", "EASD_DEBUG", false, "debug")
	n := fs.Int("n", "EASD_N", 1, "n")
	d := fs.Duration("t", "EASD_T", time.Second, "t")
	if err := fs.Parse([]string{"--n", "9"}); err != nil {
		t.Fatal(err)
	}
	if *listen != ":9999" || *other != "def" || !*debug || *n != 9 || *d != 3*time.Second {
		t.Errorf("got listen=%q other=%q debug=%v n=%d t=%v", *listen, *other, *debug, *n, *d)
	}
	if fs.Env("listen") != "EASD_LISTEN" {
		t.Errorf("Env(listen) = %q", fs.Env("listen"))
	}
	fs.Usage()
	if !strings.Contains(out.String(), "(env EASD_LISTEN)") {
		t.Errorf("usage lacks env name:\n%s", out.String())
	}
}

func TestBadEnvValue(t *testing.T) {
	for _, tc := range []struct{ env, val string }{{"EASD_B", "maybe"}, {"EASD_I", "x"}, {"EASD_D", "5"}} {
		fs := NewFlagSet("x", "x", func(k string) string {
			if k == tc.env {
				return tc.val
			}
			return ""
		}, &bytes.Buffer{})
		fs.Bool("b", "EASD_B", false, "")
		fs.Int("i", "EASD_I", 0, "")
		fs.Duration("d", "EASD_D", 0, "")
		err := fs.Parse(nil)
		if err == nil || !strings.Contains(err.Error(), tc.env) {
			t.Errorf("%s=%s: err = %v, want one naming the variable", tc.env, tc.val, err)
		}
	}
}

func TestUnknownFlag(t *testing.T) {
	fs := NewFlagSet("x", "x", nil, &bytes.Buffer{})
	if err := fs.Parse([]string{"--nope"}); err == nil {
		t.Fatal("unknown flag accepted")
	}
}
