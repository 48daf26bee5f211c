// Package passwd hashes and verifies passwords. New hashes are argon2id in
// the PHC string format ($argon2id$v=19$m=...,t=...,p=...$salt$hash);
// bcrypt hashes ($2a$, $2b$, $2y$) are accepted for users imported from
// other systems.
package passwd

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Params are argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // iterations
	Threads uint8
	SaltLen int
	KeyLen  uint32
}

// Default follows the OWASP password storage recommendation for argon2id
// (19 MiB, 2 iterations, 1 thread): a login costs a few tens of
// milliseconds and bounded memory on a small server.
var Default = Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// ErrMismatch reports a wrong password.
var ErrMismatch = errors.New("passwd: password does not match")

// ErrFormat reports a stored hash that is not a supported format.
var ErrFormat = errors.New("passwd: unsupported hash format")

var b64 = base64.RawStdEncoding

// Hash returns an argon2id PHC string for password, with a salt read
// from rnd (crypto/rand.Reader when nil).
func Hash(password string, p Params, rnd io.Reader) (string, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	salt := make([]byte, p.SaltLen)
	if _, err := io.ReadFull(rnd, salt); err != nil {
		return "", fmt.Errorf("passwd: salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify checks password against a stored hash. It returns nil on a match,
// ErrMismatch on a wrong password and ErrFormat (wrapped) on a hash it
// cannot read. Comparison is constant-time.
func Verify(hash, password string) error {
	switch {
	case strings.HasPrefix(hash, "$argon2id$"):
		return verifyArgon2id(hash, password)
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			return ErrMismatch
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrFormat, err)
		}
		return nil
	}
	return ErrFormat
}

func verifyArgon2id(hash, password string) error {
	// $argon2id$v=19$m=19456,t=2,p=1$salt$key
	parts := strings.Split(hash, "$")
	if len(parts) != 6 {
		return fmt.Errorf("%w: argon2id: %d fields", ErrFormat, len(parts))
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return fmt.Errorf("%w: argon2id version %q", ErrFormat, parts[2])
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || t == 0 || p == 0 || m == 0 {
		return fmt.Errorf("%w: argon2id params %q", ErrFormat, parts[3])
	}
	// Refuse parameters that would let a crafted hash exhaust memory.
	if m > 1<<21 || t > 64 {
		return fmt.Errorf("%w: argon2id params too large", ErrFormat)
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return fmt.Errorf("%w: argon2id salt", ErrFormat)
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 || len(want) > 1024 {
		return fmt.Errorf("%w: argon2id key", ErrFormat)
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrMismatch
	}
	return nil
}
