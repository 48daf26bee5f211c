package eas

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/easd/easd/store"
)

// Error is the one protocol error type. The client sees Status (in the
// command's Status element, 14.0+) or HTTP; the log gets Err.
type Error struct {
	// Status is an MS-ASCMD status code (2.2.2 Common Status Codes, or the
	// command's own); 0 when only an HTTP code applies.
	Status int
	// HTTP is the HTTP status for clients that cannot take Status (12.x,
	// commands without a WBXML body); 0 derives it from Status.
	HTTP int
	// Err is the cause, for the log only.
	Err error
	// RetryAfter is the Retry-After of a 503, in seconds; 0 for the default.
	RetryAfter int
}

func (e *Error) Error() string {
	s := fmt.Sprintf("eas: status %d", e.Status)
	if e.HTTP != 0 {
		s += fmt.Sprintf(" http %d", e.HTTP)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with status and a formatted cause.
func Errorf(status int, format string, a ...any) *Error {
	return &Error{Status: status, Err: fmt.Errorf(format, a...)}
}

// HTTPError returns an *Error that is answered with an HTTP code only.
func HTTPError(code int, format string, a ...any) *Error {
	return &Error{HTTP: code, Err: fmt.Errorf(format, a...)}
}

// Common status codes, MS-ASCMD 2.2.2 (Common Status Codes), sent by
// servers of protocol 14.0 and later in the command's Status element.
const (
	StatusOK                    = 1
	StatusInvalidContent        = 101
	StatusInvalidWBXML          = 102
	StatusInvalidXML            = 103
	StatusDeviceIDMissing       = 108
	StatusServerError           = 110
	StatusServerErrorRetryLater = 111
	StatusUserDisabledForSync   = 126
	StatusDeviceBlocked         = 129 // DeviceIsBlockedForThisUser
	StatusAccessDenied          = 130
	StatusCommandNotSupported   = 137
	StatusVersionNotSupported   = 138
	StatusRemoteWipeRequested   = 140
	StatusDeviceNotProvisioned  = 142
	StatusPolicyRefresh         = 143
	StatusInvalidPolicyKey      = 144
	StatusMaximumDevicesReached = 177
)

// httpFor maps a status to the HTTP code a 12.x client understands
// (MS-ASHTTP 3.2.5.1).
func httpFor(status int) int {
	switch status {
	case StatusDeviceNotProvisioned, StatusPolicyRefresh, StatusInvalidPolicyKey, StatusRemoteWipeRequested:
		return 449 // Retry after sending a Provision command
	case StatusDeviceBlocked, StatusUserDisabledForSync, StatusMaximumDevicesReached, StatusAccessDenied:
		return http.StatusForbidden
	case StatusInvalidContent, StatusInvalidWBXML, StatusInvalidXML, StatusDeviceIDMissing, StatusVersionNotSupported:
		return http.StatusBadRequest
	case StatusCommandNotSupported:
		return http.StatusNotImplemented
	case StatusServerErrorRetryLater:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// asError converts any error to an *Error: protocol errors pass through,
// everything else is a server error (status 110, HTTP 500).
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, store.ErrUnavailable) {
		// The database is restarting: MS-ASCMD 2.2.2 111
		// ServerErrorRetryLater, sent as HTTP 503 with Retry-After
		// (MS-ASHTTP 3.2.5.1); nothing was saved, the same request
		// gets the answer it would have had.
		return &Error{Status: StatusServerErrorRetryLater, HTTP: http.StatusServiceUnavailable, RetryAfter: 5, Err: err}
	}
	return &Error{Status: StatusServerError, HTTP: http.StatusInternalServerError, Err: err}
}
