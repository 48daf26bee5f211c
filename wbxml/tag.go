package wbxml

import (
	"strconv"
	"strings"
)

// Page is a WBXML code page number (MS-ASWBXML section 2.1.2.1). Each code
// page corresponds to one EAS XML namespace; pages 0 to 25 are known.
type Page uint8

// Namespace returns the EAS namespace of p (for example "AirSync"), or "" if
// p is not a known code page.
func (p Page) Namespace() string {
	if int(p) < numPages {
		return pageNames[p]
	}
	return ""
}

// Known reports whether p is one of the code pages defined by MS-ASWBXML.
func (p Page) Known() bool { return int(p) < numPages }

// String returns the namespace of p, or "0x1F" style hex for unknown pages.
func (p Page) String() string {
	if int(p) < numPages {
		return pageNames[p]
	}
	return "0x" + hex2(byte(p))
}

// LookupPage returns the code page of namespace ns. The comparison ignores
// ASCII case and a trailing ':' (libwbxml writes xmlns="AirSync:" and "Gal:"),
// so "AirSync", "airsync" and "AirSync:" all give PageAirSync.
func LookupPage(ns string) (Page, bool) {
	ns = strings.TrimSuffix(ns, ":")
	for i, name := range pageNames {
		if len(name) == len(ns) && strings.EqualFold(name, ns) {
			return Page(i), true
		}
	}
	return 0, false
}

// Tag identifies an element: the code page in the high byte and the tag token
// (0x05 to 0x3F, without the content bit 0x40) in the low byte, as defined by
// MS-ASWBXML section 2.1.2.1. Generated constants such as AirSyncSync cover
// every tag of pages 0 to 25; any other value is an unknown tag that is still
// carried through decoding and encoding unchanged.
type Tag uint16

// NewTag returns the tag for token tok (0x05 to 0x3F) of code page p. The
// content and attribute bits of tok are ignored.
func NewTag(p Page, tok byte) Tag { return Tag(p)<<8 | Tag(tok&0x3F) }

// Page returns the code page of t.
func (t Tag) Page() Page { return Page(t >> 8) }

// Token returns the tag token of t (0x05 to 0x3F for valid tags).
func (t Tag) Token() byte { return byte(t) }

// Valid reports whether t's token is in the tag range 0x05 to 0x3F (tokens
// 0x00 to 0x04 are global tokens, WAP-192-WBXML section 7.1).
func (t Tag) Valid() bool { return byte(t) >= 0x05 && byte(t) <= 0x3F }

// Known reports whether t is defined by MS-ASWBXML (that is, has a name).
func (t Tag) Known() bool { return t.Name() != "" }

// Name returns the spec name of t (for example "Sync"), or "" if t is unknown.
func (t Tag) Name() string {
	p, tok := t>>8, byte(t)
	if int(p) < numPages && tok < 64 {
		return tagNames[p][tok]
	}
	return ""
}

// Namespace returns the namespace of t's code page, or "" for unknown pages.
func (t Tag) Namespace() string { return t.Page().Namespace() }

// String returns "Namespace:Name" (for example "AirSync:Sync"). Unknown tags
// are written "AirSync:0x3F" (known page) or "0x1F:0x3F" (unknown page).
func (t Tag) String() string {
	if n := t.Name(); n != "" {
		return pageNames[t>>8] + ":" + n
	}
	return t.Page().String() + ":0x" + hex2(byte(t))
}

// LookupTag returns the tag named name in namespace ns. Namespaces are
// matched as by LookupPage; names are case-sensitive and may be the spec name
// or an alias from aliases.tsv (libwbxml's names such as "Attendee_Email" and
// the crib's names such as "BusinessCity"). It does not allocate.
func LookupTag(ns, name string) (Tag, bool) {
	p, ok := LookupPage(ns)
	if !ok {
		return 0, false
	}
	t, ok := tagsByName[p][name]
	return t, ok
}

// ParseTag parses "Namespace:Name" (as printed by Tag.String) into a tag. It
// accepts aliases like LookupTag, and the unknown-tag forms "AirSync:0x3F" and
// "0x1F:0x3F".
func ParseTag(s string) (Tag, bool) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return 0, false
	}
	ns, name := s[:i], s[i+1:]
	if t, ok := LookupTag(ns, name); ok {
		return t, true
	}
	tok, ok := parseHexByte(name)
	if !ok || tok < 5 || tok > 0x3F {
		return 0, false
	}
	p, ok := LookupPage(ns)
	if !ok {
		pb, ok2 := parseHexByte(ns)
		if !ok2 {
			return 0, false
		}
		p = Page(pb)
	}
	return NewTag(p, tok), true
}

// KnownTags returns every tag defined for code pages 0 to 25, in code page
// and token order. The caller may modify the returned slice.
func KnownTags() []Tag {
	out := make([]Tag, len(knownTags))
	copy(out, knownTags[:])
	return out
}

// LibwbxmlName returns the name libwbxml 0.11.8 uses for t; it differs from
// Name for about 65 tags (for example Calendar "Attendee_Email" for Email).
// Useful for comparing output with libwbxml's wbxml2xml.
func LibwbxmlName(t Tag) string {
	if n, ok := libwbxmlNames[t]; ok {
		return n
	}
	return t.Name()
}

// IsLibwbxmlBinary reports whether libwbxml prints OPAQUE content of t as
// base64 (and parses base64 text of t into OPAQUE). These are the eight tags
// for which EAS uses OPAQUE for binary values: ComposeMail:Mime,
// Email2:ConversationId, Email2:ConversationIndex, Search:ConversationId,
// ItemOperations:ConversationId, AirSyncBase:Content, ResolveRecipients:Data
// and GAL:Data.
func IsLibwbxmlBinary(t Tag) bool {
	switch t {
	case ComposeMailMime, Email2ConversationId, Email2ConversationIndex,
		SearchConversationId, ItemOperationsConversationId, AirSyncBaseContent,
		ResolveRecipientsData, GALData:
		return true
	}
	return false
}

const hexDigits = "0123456789ABCDEF"

func hex2(b byte) string { return string([]byte{hexDigits[b>>4], hexDigits[b&15]}) }

// parseHexByte parses "0x3F" (either case, one or two digits).
func parseHexByte(s string) (byte, bool) {
	if len(s) < 3 || len(s) > 4 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') {
		return 0, false
	}
	v, err := strconv.ParseUint(s[2:], 16, 8)
	if err != nil {
		return 0, false
	}
	return byte(v), true
}
