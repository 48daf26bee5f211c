package client

import (
	"errors"
	"fmt"
	"net/http"
)

// Status codes the client reacts to (MS-ASCMD 2.2.2 Common Status Codes).
const (
	StatusCommandNotSupported  = 137
	StatusRemoteWipeRequested  = 140
	StatusDeviceNotProvisioned = 142
	StatusPolicyRefresh        = 143
	StatusInvalidPolicyKey     = 144
)

// HTTPError is a non-200 answer.
type HTTPError struct {
	// Command is the command sent ("OPTIONS" for the capability probe).
	Command string
	// Status is the HTTP status code.
	Status int
	// Header holds the response headers (WWW-Authenticate, Retry-After,
	// X-MS-Location, MS-ASProtocolVersions …).
	Header http.Header
}

// Error implements error.
func (e *HTTPError) Error() string {
	s := fmt.Sprintf("client: %s: HTTP %d", e.Command, e.Status)
	if t := http.StatusText(e.Status); t != "" {
		s += " " + t
	} else if e.Status == 449 {
		s += " Retry after sending a Provision command"
	}
	if loc := e.Header.Get("X-MS-Location"); e.Status == 451 && loc != "" {
		s += " (redirect to " + loc + ")"
	}
	return s
}

// StatusError is a 200 answer whose Status reports failure.
type StatusError struct {
	// Command is the command sent.
	Command string
	// Element is where the status was found: "" for the command's
	// top-level Status, else e.g. "Policy" or "DeviceInformation".
	Element string
	// Status is the status code (0 if it was not a number).
	Status int
}

// Error implements error.
func (e *StatusError) Error() string {
	where := e.Command
	if e.Element != "" {
		where += " " + e.Element
	}
	return fmt.Sprintf("client: %s: status %d%s", where, e.Status, statusMeaning(e.Element, e.Status))
}

func statusMeaning(elem string, st int) string {
	if elem != "" {
		return ""
	}
	m := map[int]string{
		101: "invalid content", 102: "invalid WBXML", 103: "invalid XML", 108: "device id missing",
		110: "server error", 111: "server error, retry later", 126: "user disabled for sync",
		129: "device blocked", 130: "access denied", 137: "command not supported",
		138: "version not supported", 140: "remote wipe requested", 142: "device not provisioned",
		143: "policy refresh", 144: "invalid policy key", 165: "device information required",
		177: "maximum devices reached",
	}[st]
	if m == "" {
		return ""
	}
	return " (" + m + ")"
}

// ErrWiped is matched (errors.Is) by every *WipeError.
var ErrWiped = errors.New("client: device remotely wiped")

// WipeError reports that the server ordered a remote wipe and the client
// acknowledged it (MS-ASPROV 3.1.5.1.2.2).
type WipeError struct {
	// AccountOnly is true for AccountOnlyRemoteWipe (16.1).
	AccountOnly bool
	// AckErr is the error sending the acknowledgement, if it failed.
	AckErr error
}

// Error implements error.
func (e *WipeError) Error() string {
	kind := "remote wipe"
	if e.AccountOnly {
		kind = "account-only remote wipe"
	}
	if e.AckErr != nil {
		return fmt.Sprintf("client: server ordered a %s; acknowledging it failed: %v", kind, e.AckErr)
	}
	return fmt.Sprintf("client: server ordered a %s; acknowledged", kind)
}

// Is makes errors.Is(err, ErrWiped) true.
func (e *WipeError) Is(target error) bool { return target == ErrWiped }

// Unwrap returns the acknowledgement error.
func (e *WipeError) Unwrap() error { return e.AckErr }
