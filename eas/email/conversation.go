package email

import (
	"crypto/sha256"
	"encoding/binary"
	"strings"
	"time"
)

// ConversationID returns the 16-byte email2:ConversationId (MS-ASEMAIL
// 2.2.2.21, MS-ASCON 2.2.2.3.3) of the thread a message belongs to, from the
// raw values of its Message-ID, In-Reply-To and References headers: the
// first 16 bytes of SHA-256 over the thread root's normalised id (angle
// brackets and surrounding space removed, lower-cased). The root is the
// first id in References, else the first in In-Reply-To, else the message's
// own Message-ID, so every message of a thread (whose later messages keep
// the root first in References, RFC 5322 section 3.6.4) gets the same value.
// It returns nil when none of the three holds an id.
func ConversationID(messageID, inReplyTo, references string) []byte {
	for _, v := range []string{references, inReplyTo, messageID} {
		if id := firstMsgID(v); id != "" {
			return conversationHash("id:" + id)
		}
	}
	return nil
}

// conversationHash is the first 16 bytes of SHA-256 of s.
func conversationHash(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:16]
}

// firstMsgID returns the first message id in a header value, normalised:
// the first "<...>" token, or failing that the first word (ids without
// brackets occur in the wild).
func firstMsgID(v string) string {
	v = strings.TrimSpace(v)
	if v == "" {
		return ""
	}
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i+1:], '>'); j > 0 {
			return strings.ToLower(strings.TrimSpace(v[i+1 : i+1+j]))
		}
	}
	f := strings.Fields(v)
	if len(f) == 0 {
		return ""
	}
	return strings.ToLower(strings.Trim(f[0], "<>"))
}

// filetimeEpochSeconds is the number of seconds from 1601-01-01 (the
// FILETIME epoch) to 1970-01-01.
const filetimeEpochSeconds = 11644473600

// ConversationIndex returns the email2:ConversationIndex (MS-ASEMAIL
// 2.2.2.22) of a message sent at t: the 5-byte Conversation Index Header of
// MS-ASCON 2.2.2.4.1, the 24 low bits of the FILETIME high part then the 16
// high bits of its low part (bits 16-55 of the 64-bit FILETIME), big-endian
// (as MS-OXOMSG 2.2.1.3 lays out its Current FILETIME). No response levels
// follow: they hold the delays of each reply relative to the thread's first
// message, whose time a message alone does not tell, so every message is
// indexed as a thread start and clients order by date. A zero or
// out-of-range t gives nil.
func ConversationIndex(t time.Time) []byte {
	sec := t.Unix() + filetimeEpochSeconds
	if t.IsZero() || sec < 0 || sec > 1<<40 {
		return nil
	}
	ft := uint64(sec)*1e7 + uint64(t.Nanosecond()/100)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], ft)
	out := make([]byte, 5)
	copy(out, b[1:6])
	return out
}
