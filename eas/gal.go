package eas

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/easd/easd/store"
	"github.com/easd/easd/wbxml"
)

// The global address list (GAL) is the users of this server: every user
// that is not disabled, described by the per-user setting "profile". Search
// with Store Name "GAL" (MS-ASCMD 2.2.1.16) and ResolveRecipients
// (MS-ASCMD 2.2.1.15, resolve.go) read it.
//
// Matching rule (MS-ASCMD 2.2.3.142.2 asks for a case-insensitive prefix
// match on the entry's indexed properties): the query, with its spaces
// collapsed, matches an entry when it is a prefix of the display name, the
// first name, the last name, the alias or the email address, or when every
// word of it is a prefix of some word of the display name, first name, last
// name or alias (so "smi" finds "Alice Smith" and "al sm" finds her too).
// Letters are compared case-insensitively. The email address matches only
// from its start: "example" does not list everyone at example.com.
// MS-ASCMD sets no minimum query length; an empty query is refused with
// Store status 2.

// ProfileSettingKey is the per-user setting (store UserSetting) holding the
// user's directory entry: a Profile as JSON.
const ProfileSettingKey = "profile"

// MaxPictureBytes bounds a profile's Picture (a JPEG). Stored pictures
// larger than this are answered as too large (status 174).
const MaxPictureBytes = 100 << 10

// MaxProfileField bounds each text field of a Profile, in bytes (the
// length ResolveRecipients allows a To, MS-ASCMD 6.31).
const MaxProfileField = 256

// Profile is a user's entry in the global address list, stored as JSON in
// the user setting ProfileSettingKey. Empty fields are left out of Search
// results (MS-ASCMD 2.2.3.139.3: only the properties an entry has). A
// missing DisplayName defaults to "FirstName LastName", else the login; a
// missing EmailAddress to the login, or login@Config.Domain when the login
// has no '@'.
type Profile struct {
	// DisplayName is gal:DisplayName, the name phones show.
	DisplayName string `json:"displayName,omitempty"`
	// FirstName and LastName are gal:FirstName and gal:LastName.
	FirstName string `json:"firstName,omitempty"`
	LastName  string `json:"lastName,omitempty"`
	// Title, Company and Office are gal:Title, gal:Company and
	// gal:Office (a location or room).
	Title   string `json:"title,omitempty"`
	Company string `json:"company,omitempty"`
	Office  string `json:"office,omitempty"`
	// Phone, HomePhone and MobilePhone are gal:Phone (work),
	// gal:HomePhone and gal:MobilePhone.
	Phone       string `json:"phone,omitempty"`
	HomePhone   string `json:"homePhone,omitempty"`
	MobilePhone string `json:"mobilePhone,omitempty"`
	// Alias is gal:Alias, a short name the user is also known by.
	Alias string `json:"alias,omitempty"`
	// EmailAddress is gal:EmailAddress, the address mail to the user
	// goes to.
	EmailAddress string `json:"emailAddress,omitempty"`
	// Picture is a JPEG of at most MaxPictureBytes (gal:Picture,
	// MS-ASCMD 2.2.3.135.3), sent to 14.1 clients that ask for pictures.
	Picture []byte `json:"picture,omitempty"`
}

// Validate checks what a stored Profile may hold: text fields of at most
// MaxProfileField bytes of UTF-8 without control characters, an
// EmailAddress that is a bare address (user@domain) when set, and a
// Picture that is a JPEG of at most MaxPictureBytes.
func (p Profile) Validate() error {
	for _, f := range []struct{ name, v string }{
		{"display name", p.DisplayName}, {"first name", p.FirstName}, {"last name", p.LastName},
		{"title", p.Title}, {"company", p.Company}, {"office", p.Office}, {"phone", p.Phone},
		{"home phone", p.HomePhone}, {"mobile phone", p.MobilePhone}, {"alias", p.Alias},
		{"email address", p.EmailAddress},
	} {
		switch {
		case len(f.v) > MaxProfileField:
			return fmt.Errorf("%s longer than %d bytes", f.name, MaxProfileField)
		case !utf8.ValidString(f.v):
			return fmt.Errorf("%s is not UTF-8", f.name)
		case strings.ContainsFunc(f.v, unicode.IsControl):
			return fmt.Errorf("%s has control characters", f.name)
		}
	}
	if p.EmailAddress != "" {
		a, err := mail.ParseAddress(p.EmailAddress)
		if err != nil || a.Name != "" || a.Address != p.EmailAddress {
			return fmt.Errorf("email address %q: want a bare address such as alice@example.com", p.EmailAddress)
		}
	}
	if len(p.Picture) > 0 {
		if len(p.Picture) > MaxPictureBytes {
			return fmt.Errorf("picture of %d bytes, more than %d", len(p.Picture), MaxPictureBytes)
		}
		if !IsJPEG(p.Picture) {
			return errors.New("picture is not a JPEG")
		}
	}
	return nil
}

// IsJPEG reports whether b starts like a JPEG file (an SOI marker followed
// by another marker).
func IsJPEG(b []byte) bool { return bytes.HasPrefix(b, []byte{0xFF, 0xD8, 0xFF}) }

// pictureFlag decodes the picture of a stored Profile as "present", without
// decoding (or copying) its bytes: listing the directory reads every
// profile, and pictures are only needed for the entries sent.
type pictureFlag bool

// UnmarshalJSON implements json.Unmarshaler.
func (f *pictureFlag) UnmarshalJSON(b []byte) error {
	s := string(bytes.TrimSpace(b))
	*f = pictureFlag(s != "null" && s != `""`)
	return nil
}

// profileHead is a stored Profile without its picture bytes. Its Picture
// field, shallower than the embedded one, takes the "picture" key.
type profileHead struct {
	Profile
	Picture pictureFlag `json:"picture"`
}

// galEntry is one user in the directory, with defaults applied and the
// lower-cased forms matching uses.
type galEntry struct {
	userID     int64
	login      string
	p          Profile // Picture not loaded
	hasPicture bool
	display    string   // display name, lower case, spaces collapsed
	alias      string   // alias, the same way
	names      []string // display, first, last name and alias, the same way
	words      []string // the words of names
	email      string   // lower case
}

// userLister is the store capability the directory needs (both stores have
// it; Store does not require it, so a store without it lists nobody).
type userLister interface {
	Users(ctx context.Context) ([]store.User, error)
}

// galDirectory reads the directory: every enabled user with their profile,
// ordered by display name, then email address. A profile that does not
// decode is logged and read as empty, so that one bad record does not hide
// the others.
func (h *Handler) galDirectory(ctx context.Context, log *slog.Logger) ([]galEntry, error) {
	lister, ok := h.deps.Store.(userLister)
	if !ok {
		log.Warn("GAL: the store cannot list users; the address list is empty")
		return nil, nil
	}
	users, err := lister.Users(ctx)
	if err != nil {
		return nil, err
	}
	dir := make([]galEntry, 0, len(users))
	for _, u := range users {
		if u.Disabled {
			continue
		}
		var head profileHead
		b, err := h.deps.Store.UserSetting(ctx, u.ID, ProfileSettingKey)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			if err := json.Unmarshal(b, &head); err != nil {
				log.Error("GAL: stored profile does not decode; listed without it", "user", u.Name, "err", err)
				head = profileHead{}
			}
		}
		dir = append(dir, h.newGALEntry(u, head.Profile, bool(head.Picture)))
	}
	slices.SortStableFunc(dir, func(a, b galEntry) int {
		if c := strings.Compare(a.display, b.display); c != 0 {
			return c
		}
		return strings.Compare(a.email, b.email)
	})
	return dir, nil
}

// newGALEntry applies the defaults to p and prepares matching.
func (h *Handler) newGALEntry(u store.User, p Profile, hasPicture bool) galEntry {
	p.Picture = nil
	if p.EmailAddress == "" {
		p.EmailAddress = primaryAddress(u.Name, h.cfg.Domain)
	}
	if p.DisplayName == "" {
		p.DisplayName = strings.Join(strings.Fields(p.FirstName+" "+p.LastName), " ")
	}
	if p.DisplayName == "" {
		p.DisplayName = u.Name
	}
	e := galEntry{userID: u.ID, login: u.Name, p: p, hasPicture: hasPicture, email: strings.ToLower(p.EmailAddress)}
	for _, s := range []string{p.DisplayName, p.FirstName, p.LastName, p.Alias} {
		n := foldSpaces(s)
		e.names = append(e.names, n)
		e.words = append(e.words, queryWords(n)...)
	}
	e.display, e.alias = e.names[0], e.names[3]
	return e
}

// foldSpaces lower-cases s and collapses its runs of white space.
func foldSpaces(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), " ")) }

// queryWords splits a folded string into words at spaces and the
// punctuation names carry (hyphens, dots, commas, apostrophes...).
func queryWords(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsPunct(r) })
}

// galMatcher is a parsed query (see the matching rule above).
type galMatcher struct {
	whole string   // folded query
	words []string // its words
}

func newGALMatcher(q string) galMatcher {
	w := foldSpaces(q)
	return galMatcher{whole: w, words: queryWords(w)}
}

// match reports whether e matches the query.
func (m galMatcher) match(e *galEntry) bool {
	if m.whole == "" {
		return false
	}
	if strings.HasPrefix(e.email, m.whole) {
		return true
	}
	for _, n := range e.names {
		if strings.HasPrefix(n, m.whole) {
			return true
		}
	}
	if len(m.words) == 0 {
		return false
	}
	for _, w := range m.words {
		if !slices.ContainsFunc(e.words, func(ew string) bool { return strings.HasPrefix(ew, w) }) {
			return false
		}
	}
	return true
}

// galPicture returns the stored picture of a user (nil when none).
func (h *Handler) galPicture(ctx context.Context, userID int64) ([]byte, error) {
	b, err := h.deps.Store.UserSetting(ctx, userID, ProfileSettingKey)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p Profile
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, nil // logged when the directory was read
	}
	return p.Picture, nil
}

// Picture status values: gal:Picture > Status in Search (MS-ASCMD
// 2.2.3.177.13) and Picture > Status in ResolveRecipients (2.2.3.177.12)
// share them.
const (
	pictureOK           = 1
	pictureNone         = 173 // NoPicture: the contact has no photo
	pictureTooLarge     = 174 // PictureTooLarge: larger than MaxSize
	pictureLimitReached = 175 // PictureLimitReached: MaxPictures photos already sent
)

// pictureBudget applies Options > Picture (MaxSize, MaxPictures; MS-ASCMD
// 2.2.3.105, 2.2.3.104) to one query: the first MaxPictures entries that
// have a photo of at most MaxSize bytes get it (status 1); after that an
// entry with a photo gets 175, one with a photo too large 174, one without
// 173 (MS-ASCMD 2.2.3.104.3). -1 means no limit.
type pictureBudget struct {
	maxSize int
	left    int
}

// parsePictureOptions reads a Picture request element, which may be empty
// (MS-ASCMD 2.2.3.135: container or none): no limits then. A MaxSize or
// MaxPictures that is not a non-negative integer is invalid (ok false).
func parsePictureOptions(n *wbxml.Node, maxSizeTag, maxPicturesTag wbxml.Tag) (pictureBudget, bool) {
	b := pictureBudget{maxSize: -1, left: -1}
	for _, f := range []struct {
		tag wbxml.Tag
		dst *int
	}{{maxSizeTag, &b.maxSize}, {maxPicturesTag, &b.left}} {
		c := n.Child(f.tag)
		if c == nil {
			continue
		}
		v, err := strconv.Atoi(strings.TrimSpace(c.Text()))
		if err != nil || v < 0 {
			return b, false
		}
		*f.dst = v
	}
	return b, true
}

// take decides the picture of one entry: its status and the bytes to send
// (nil unless the status is 1).
func (b *pictureBudget) take(pic []byte) (int, []byte) {
	switch {
	case len(pic) == 0:
		return pictureNone, nil
	case len(pic) > MaxPictureBytes, b.maxSize >= 0 && len(pic) > b.maxSize:
		return pictureTooLarge, nil
	case b.left == 0:
		return pictureLimitReached, nil
	}
	if b.left > 0 {
		b.left--
	}
	return pictureOK, pic
}

// pictureNode answers one entry's picture: parent > Status, Data (OPAQUE:
// the element is a byte array, MS-ASCMD 2.2.3.39). The picture is read only
// for entries that have one.
func (h *Handler) pictureNode(ctx context.Context, b *pictureBudget, e *galEntry, parent, status, data wbxml.Tag) (*wbxml.Node, error) {
	var pic []byte
	if e.hasPicture {
		var err error
		if pic, err = h.galPicture(ctx, e.userID); err != nil {
			return nil, err
		}
	}
	st, sent := b.take(pic)
	n := wbxml.E(parent, wbxml.T(status, strconv.Itoa(st)))
	if st == pictureOK {
		n.Append(wbxml.O(data, sent))
	}
	return n, nil
}

// galQuery is a parsed Search of the GAL store.
type galQuery struct {
	m          galMatcher
	start, end int            // Range, inclusive
	pictures   *pictureBudget // nil: no pictures asked (or before 14.1)
}

// parseGALQuery reads Store > Query and Options of a GAL search: Query is
// text (MS-ASCMD 2.2.3.142.2), Options may hold Range (2.2.3.143.3: "m-n",
// at most 100 results, a wider range is cut as for the Mailbox) and, from
// 14.1, Picture with MaxSize and MaxPictures (2.2.3.135.3); other options
// (RebuildResults, DeepTraversal, UserName, Password) do not apply and are
// ignored. A missing or empty Query, a Query with elements inside (And,
// EqualTo belong to other stores), a malformed Range or Picture is Store
// status 2 (invalid request, 2.2.3.177.13).
func parseGALQuery(st *wbxml.Node, version string) (galQuery, int) {
	gq := galQuery{end: searchMaxRange - 1}
	q := st.Child(wbxml.SearchQuery)
	if q == nil || len(q.Children) > 0 {
		return gq, searchInvalid
	}
	text := strings.TrimSpace(q.Text())
	if text == "" || len(text) > MaxProfileField {
		return gq, searchInvalid
	}
	gq.m = newGALMatcher(text)
	if o := st.Child(wbxml.SearchOptions); o != nil {
		if r := o.Child(wbxml.SearchRange); r != nil {
			start, end, ok := parseSearchRange(r.Text())
			if !ok {
				return gq, searchInvalid
			}
			gq.start, gq.end = start, min(end, start+searchMaxRange-1)
		}
		if p := o.Child(wbxml.SearchPicture); p != nil && versionAtLeast(version, "14.1") {
			b, ok := parsePictureOptions(p, wbxml.SearchMaxSize, wbxml.SearchMaxPictures)
			if !ok {
				return gq, searchInvalid
			}
			gq.pictures = &b
		}
	}
	return gq, searchOK
}

// searchGAL answers a Store of name GAL (MS-ASCMD 2.2.1.16): Result >
// Properties with the entry's non-empty gal: properties (2.2.3.139.3) and,
// when asked for in 14.1, gal:Picture; then Range and Total. No match is
// an empty Result and Total 0. A directory that cannot be read is Store
// status 3 (server error).
func (h *Handler) searchGAL(ctx context.Context, s *Session, st *wbxml.Node) (*wbxml.Node, error) {
	gq, status := parseGALQuery(st, s.Req.Version)
	if status != searchOK {
		s.Log.Info("Search GAL refused", "status", status)
		return storeStatus(status), nil
	}
	dir, err := h.galDirectory(ctx, s.Log)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s.Log.Error("Search GAL: reading the directory", "err", err)
		return storeStatus(searchServerError), nil
	}
	var matches []*galEntry
	for i := range dir {
		if gq.m.match(&dir[i]) {
			matches = append(matches, &dir[i])
		}
	}
	total := len(matches)
	resp := storeStatus(searchOK)
	if gq.start >= total {
		return resp.Append(wbxml.E(wbxml.SearchResult), wbxml.T(wbxml.SearchTotal, strconv.Itoa(total))), nil
	}
	page := matches[gq.start:min(gq.end+1, total)]
	for _, e := range page {
		props := wbxml.E(wbxml.SearchProperties, galProperties(&e.p)...)
		if gq.pictures != nil {
			pic, err := h.pictureNode(ctx, gq.pictures, e, wbxml.GALPicture, wbxml.GALStatus, wbxml.GALData)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				s.Log.Error("Search GAL: reading a picture", "user", e.login, "err", err)
				return storeStatus(searchServerError), nil
			}
			props.Append(pic)
		}
		resp.Append(wbxml.E(wbxml.SearchResult, props))
	}
	return resp.Append(
		wbxml.T(wbxml.SearchRange, fmt.Sprintf("%d-%d", gq.start, gq.start+len(page)-1)),
		wbxml.T(wbxml.SearchTotal, strconv.Itoa(total))), nil
}

// galProperties lists p's non-empty fields as gal: elements, in the order
// of MS-ASCMD 2.2.3.139.3.
func galProperties(p *Profile) []*wbxml.Node {
	var out []*wbxml.Node
	for _, f := range []struct {
		tag wbxml.Tag
		v   string
	}{
		{wbxml.GALDisplayName, p.DisplayName}, {wbxml.GALPhone, p.Phone}, {wbxml.GALOffice, p.Office},
		{wbxml.GALTitle, p.Title}, {wbxml.GALCompany, p.Company}, {wbxml.GALAlias, p.Alias},
		{wbxml.GALFirstName, p.FirstName}, {wbxml.GALLastName, p.LastName}, {wbxml.GALHomePhone, p.HomePhone},
		{wbxml.GALMobilePhone, p.MobilePhone}, {wbxml.GALEmailAddress, p.EmailAddress},
	} {
		if f.v != "" {
			out = append(out, wbxml.T(f.tag, f.v))
		}
	}
	return out
}
