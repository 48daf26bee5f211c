package wbxml

import (
	"errors"
	"fmt"
)

// Limits bounds the resources a Decoder may use on untrusted input. A zero
// field means "use the default" (see DefaultLimits); a negative field means
// "no limit" and should only be used for trusted input.
type Limits struct {
	// MaxDepth is the maximum number of simultaneously open elements.
	MaxDepth int
	// MaxElements is the maximum number of elements in one document. It
	// bounds the memory of the tree layer (about 64 bytes per element).
	MaxElements int
	// MaxStringLen is the maximum length in bytes of one STR_I string.
	MaxStringLen int
	// MaxOpaqueLen is the maximum declared length of one OPAQUE value.
	MaxOpaqueLen int64
	// MaxTotal is the maximum size in bytes of the whole document, header
	// and OPAQUE payloads included.
	MaxTotal int64
}

// DefaultLimits are the limits used for zero fields of a Limits value. They
// are sized for EAS requests: real documents nest about 12 deep and carry at
// most a few tens of megabytes (MIME in SendMail, attachments).
var DefaultLimits = Limits{
	MaxDepth:     64,
	MaxElements:  1 << 20,
	MaxStringLen: 16 << 20,
	MaxOpaqueLen: 64 << 20,
	MaxTotal:     64 << 20,
}

const unlimited = 1<<62 - 1

// resolved returns l with zero fields replaced by defaults and negative ones
// by an effectively infinite bound.
func (l Limits) resolved() Limits {
	pick := func(v, def int64) int64 {
		switch {
		case v == 0:
			return def
		case v < 0:
			return unlimited
		}
		return v
	}
	return Limits{
		MaxDepth:     int(pick(int64(l.MaxDepth), int64(DefaultLimits.MaxDepth))),
		MaxElements:  int(pick(int64(l.MaxElements), int64(DefaultLimits.MaxElements))),
		MaxStringLen: int(pick(int64(l.MaxStringLen), int64(DefaultLimits.MaxStringLen))),
		MaxOpaqueLen: pick(l.MaxOpaqueLen, DefaultLimits.MaxOpaqueLen),
		MaxTotal:     pick(l.MaxTotal, DefaultLimits.MaxTotal),
	}
}

// ErrLimit is matched (via errors.Is) by every error caused by exceeding one
// of the Limits.
var ErrLimit = errors.New("wbxml: limit exceeded")

// LimitError reports that a document exceeded one of the decoder's Limits.
type LimitError struct {
	Offset int64  // byte offset in the input where the limit was hit
	Limit  string // name of the Limits field, e.g. "MaxDepth"
	Value  int64  // the configured limit
}

// Error implements error.
func (e *LimitError) Error() string {
	return fmt.Sprintf("wbxml: %s %d exceeded at offset %d", e.Limit, e.Value, e.Offset)
}

// Unwrap returns ErrLimit so that errors.Is(err, ErrLimit) holds.
func (e *LimitError) Unwrap() error { return ErrLimit }

// SyntaxError reports malformed WBXML: a truncated document, a bad
// mb_u_int32, an END with no open element, or a token that EAS does not use
// (attributes, ENTITY, LITERAL, EXT_*, PI, STR_T; WAP-192-WBXML section 7.1).
type SyntaxError struct {
	Offset int64  // byte offset in the input of the offending token
	Msg    string // description of the problem
	Err    error  // underlying cause (io.ErrUnexpectedEOF for truncation), may be nil
}

// Error implements error.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("wbxml: syntax error at offset %d: %s", e.Offset, e.Msg)
}

// Unwrap returns the underlying cause, if any.
func (e *SyntaxError) Unwrap() error { return e.Err }
