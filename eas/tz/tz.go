// Package tz handles the time zone of EAS calendar items: the
// calendar:Timezone element, a base64 TIME_ZONE_INFORMATION structure
// (MS-ASDTYPE 2.6.4, 2.7.6 in later revisions; MS-DTYP 2.3.13 for its
// SYSTEMTIME fields), its mapping to IANA zones (via CLDR's Windows zone
// table, generated into windowszones_gen.go) and to iCalendar VTIMEZONE
// components (RFC 5545 3.6.5).
//
// A TimeZone describes one year's rule: a standard offset and, optionally,
// a daylight-saving period between two yearly transition dates. Its own
// rules (Offset, ToUTC, Location) apply that rule to every year, as a
// device that received the blob does.
package tz

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"
)

// BlobSize is the size in bytes of a TIME_ZONE_INFORMATION structure
// (MS-ASDTYPE 2.6.4): 4 + 64 + 16 + 4 + 64 + 16 + 4.
const BlobSize = 172

// nameUnits is the size of StandardName and DaylightName in UTF-16 units.
const nameUnits = 32

// maxBiasMinutes bounds every bias and resulting offset Parse accepts:
// real zones stay within UTC-12 and UTC+14; a day is generous.
const maxBiasMinutes = 24 * 60

// ErrInvalid marks a Timezone value that is not a TIME_ZONE_INFORMATION
// blob (bad base64, wrong size, offsets beyond a day).
var ErrInvalid = errors.New("tz: invalid TIME_ZONE_INFORMATION")

// SystemTime is a Windows SYSTEMTIME (MS-DTYP 2.3.13) as used for the
// transition dates of TIME_ZONE_INFORMATION. With Year 0 it is a yearly
// rule: the Day-th (1 to 4, 5 = last) DayOfWeek (0 = Sunday) of Month at
// Hour:Minute:Second.Milliseconds local time; with another Year it is an
// absolute date, which this package applies to every year on the same
// Month and Day. Month 0 means "no transition".
type SystemTime struct {
	Year, Month, DayOfWeek, Day, Hour, Minute, Second, Milliseconds uint16
}

// TimeZone is a decoded TIME_ZONE_INFORMATION (MS-ASDTYPE 2.6.4). All
// biases are minutes with UTC = local + bias: standard time has the offset
// -(Bias+StandardBias), daylight time -(Bias+DaylightBias).
type TimeZone struct {
	// Bias is the base bias (US Eastern 300, CET -60).
	Bias int32
	// StandardName is the name of standard time (Exchange sends the
	// Windows zone id, "W. Europe Standard Time"; iOS often nothing).
	StandardName string
	// StandardDate is when daylight time ends, in daylight local time.
	StandardDate SystemTime
	// StandardBias is added to Bias in standard time (usually 0).
	StandardBias int32
	// DaylightName is the name of daylight time.
	DaylightName string
	// DaylightDate is when daylight time starts, in standard local time.
	DaylightDate SystemTime
	// DaylightBias is added to Bias in daylight time (usually -60).
	DaylightBias int32
}

// UTC returns the zone of Coordinated Universal Time: bias 0, no daylight
// time, named as Windows names it.
func UTC() TimeZone { return TimeZone{StandardName: "UTC", DaylightName: "UTC"} }

// Parse decodes the value of a calendar:Timezone element (MS-ASCAL
// 2.2.2.44): base64 of exactly 172 bytes. It tolerates what clients send
// besides standard base64: missing padding, the URL-safe alphabet and
// embedded white space. Names end at their first NUL (or after 32 units).
// Biases whose offsets exceed a day are rejected.
func Parse(b64 string) (TimeZone, error) {
	s := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n', '=':
			return -1
		case '-':
			return '+'
		case '_':
			return '/'
		}
		return r
	}, b64)
	if len(s) != base64.RawStdEncoding.EncodedLen(BlobSize) {
		return TimeZone{}, fmt.Errorf("%w: %d base64 characters, want %d", ErrInvalid, len(s), base64.RawStdEncoding.EncodedLen(BlobSize))
	}
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return TimeZone{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return FromBytes(b)
}

// FromBytes decodes a raw 172-byte TIME_ZONE_INFORMATION.
func FromBytes(b []byte) (TimeZone, error) {
	if len(b) != BlobSize {
		return TimeZone{}, fmt.Errorf("%w: %d bytes, want %d", ErrInvalid, len(b), BlobSize)
	}
	le := binary.LittleEndian
	z := TimeZone{
		Bias:         int32(le.Uint32(b[0:])),
		StandardName: decodeName(b[4:68]),
		StandardDate: decodeSystemTime(b[68:84]),
		StandardBias: int32(le.Uint32(b[84:])),
		DaylightName: decodeName(b[88:152]),
		DaylightDate: decodeSystemTime(b[152:168]),
		DaylightBias: int32(le.Uint32(b[168:])),
	}
	for _, m := range []int64{int64(z.Bias), int64(z.StandardBias), int64(z.DaylightBias),
		int64(z.Bias) + int64(z.StandardBias), int64(z.Bias) + int64(z.DaylightBias)} {
		if m < -maxBiasMinutes || m > maxBiasMinutes {
			return TimeZone{}, fmt.Errorf("%w: bias of %d minutes", ErrInvalid, m)
		}
	}
	return z, nil
}

// Bytes returns the 172-byte TIME_ZONE_INFORMATION. Names longer than 31
// UTF-16 units are cut so that they stay NUL-terminated.
func (z TimeZone) Bytes() []byte {
	b := make([]byte, BlobSize)
	le := binary.LittleEndian
	le.PutUint32(b[0:], uint32(z.Bias))
	encodeName(b[4:68], z.StandardName)
	encodeSystemTime(b[68:84], z.StandardDate)
	le.PutUint32(b[84:], uint32(z.StandardBias))
	encodeName(b[88:152], z.DaylightName)
	encodeSystemTime(b[152:168], z.DaylightDate)
	le.PutUint32(b[168:], uint32(z.DaylightBias))
	return b
}

// Encode returns the calendar:Timezone value: standard base64 of Bytes.
func (z TimeZone) Encode() string { return base64.StdEncoding.EncodeToString(z.Bytes()) }

// String describes z for logs and test failures.
func (z TimeZone) String() string {
	if !z.HasDST() {
		return fmt.Sprintf("%q UTC%s", z.StandardName, formatOffset(z.StandardOffset()))
	}
	return fmt.Sprintf("%q UTC%s, DST UTC%s from %v to %v", z.StandardName, formatOffset(z.StandardOffset()),
		formatOffset(z.DaylightOffset()), z.DaylightDate, z.StandardDate)
}

func decodeName(b []byte) string {
	u := make([]uint16, 0, nameUnits)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

func encodeName(b []byte, s string) {
	u := utf16.Encode([]rune(s))
	if len(u) > nameUnits-1 {
		u = u[:nameUnits-1]
		if utf16.IsSurrogate(rune(u[len(u)-1])) && u[len(u)-1] < 0xDC00 {
			u = u[:len(u)-1] // do not keep half a surrogate pair
		}
	}
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
}

func decodeSystemTime(b []byte) SystemTime {
	le := binary.LittleEndian
	return SystemTime{le.Uint16(b[0:]), le.Uint16(b[2:]), le.Uint16(b[4:]), le.Uint16(b[6:]),
		le.Uint16(b[8:]), le.Uint16(b[10:]), le.Uint16(b[12:]), le.Uint16(b[14:])}
}

func encodeSystemTime(b []byte, t SystemTime) {
	le := binary.LittleEndian
	for i, v := range []uint16{t.Year, t.Month, t.DayOfWeek, t.Day, t.Hour, t.Minute, t.Second, t.Milliseconds} {
		le.PutUint16(b[2*i:], v)
	}
}

// StandardOffset is the UTC offset of standard time, -(Bias+StandardBias).
func (z TimeZone) StandardOffset() time.Duration {
	return -time.Duration(int64(z.Bias)+int64(z.StandardBias)) * time.Minute
}

// DaylightOffset is the UTC offset of daylight time, -(Bias+DaylightBias).
func (z TimeZone) DaylightOffset() time.Duration {
	return -time.Duration(int64(z.Bias)+int64(z.DaylightBias)) * time.Minute
}

// HasDST reports whether z has daylight time: both transition dates are
// valid (MS-ASDTYPE 2.6.4: a zero Month means none) and the offsets
// differ.
func (z TimeZone) HasDST() bool {
	return z.StandardDate.valid() && z.DaylightDate.valid() && z.StandardBias != z.DaylightBias
}

// valid reports whether t is a usable transition date.
func (t SystemTime) valid() bool {
	if t.Month < 1 || t.Month > 12 || t.Hour > 23 || t.Minute > 59 || t.Second > 59 || t.Milliseconds > 999 {
		return false
	}
	if t.Year == 0 {
		return t.Day >= 1 && t.Day <= 5 && t.DayOfWeek <= 6
	}
	return t.Day >= 1 && int(t.Day) <= daysIn(2000, time.Month(t.Month)) // any leap year
}

// String renders t as "Day-th DayOfWeek of Month hh:mm:ss.mmm" (yearly) or
// "yyyy-mm-dd hh:mm:ss.mmm" (absolute).
func (t SystemTime) String() string {
	clock := fmt.Sprintf("%02d:%02d:%02d.%03d", t.Hour, t.Minute, t.Second, t.Milliseconds)
	if t.Year != 0 {
		return fmt.Sprintf("%04d-%02d-%02d %s", t.Year, t.Month, t.Day, clock)
	}
	return fmt.Sprintf("week %d %s of month %d %s", t.Day, time.Weekday(t.DayOfWeek%7), t.Month, clock)
}

// formatOffset renders an offset as +hh:mm (with :ss when needed).
func formatOffset(d time.Duration) string {
	sign := "+"
	if d < 0 {
		sign, d = "-", -d
	}
	s := int64(d / time.Second)
	if s%60 != 0 {
		return fmt.Sprintf("%s%02d:%02d:%02d", sign, s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%s%02d:%02d", sign, s/3600, s/60%60)
}

// daysIn returns the number of days of month m in year y.
func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
