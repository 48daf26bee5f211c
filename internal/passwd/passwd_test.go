package passwd

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// fast keeps the tests quick; production uses Default.
var fast = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestArgon2idRoundTrip(t *testing.T) {
	h, err := Hash("correct horse", fast, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("hash %q not in PHC form", h)
	}
	if strings.Contains(h, "correct horse") {
		t.Fatal("hash contains the password")
	}
	if err := Verify(h, "correct horse"); err != nil {
		t.Errorf("Verify(right) = %v", err)
	}
	if err := Verify(h, "correct horsE"); !errors.Is(err, ErrMismatch) {
		t.Errorf("Verify(wrong) = %v, want ErrMismatch", err)
	}
	h2, _ := Hash("correct horse", fast, nil)
	if h == h2 {
		t.Error("two hashes of one password are equal: salt not random")
	}
}

func TestDefaultParams(t *testing.T) {
	h, err := Hash("pw", Default, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(h, "pw"); err != nil {
		t.Fatal(err)
	}
}

func TestBcrypt(t *testing.T) {
	b, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(string(b), "pw"); err != nil {
		t.Errorf("bcrypt right: %v", err)
	}
	if err := Verify(string(b), "px"); !errors.Is(err, ErrMismatch) {
		t.Errorf("bcrypt wrong: %v", err)
	}
}

func TestBadHashes(t *testing.T) {
	for _, h := range []string{
		"", "plain", "$argon2id$", "$argon2id$v=18$m=64,t=1,p=1$c2FsdA$a2V5",
		"$argon2id$v=19$m=64,t=0,p=1$c2FsdA$a2V5",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdA$a2V5",
		"$argon2id$v=19$m=64,t=1,p=1$!!$a2V5",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdA$",
		"$2a$10$short",
	} {
		if err := Verify(h, "pw"); !errors.Is(err, ErrFormat) {
			t.Errorf("Verify(%q) = %v, want ErrFormat", h, err)
		}
	}
}
