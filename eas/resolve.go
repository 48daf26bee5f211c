package eas

import (
	"context"
	"net/mail"
	"strconv"
	"strings"

	"github.com/easd/easd/wbxml"
)

// galCommands registers the commands that need only the store:
// ResolveRecipients, and Search for the GAL store when no mail backend
// registered Search already (searchGALOnly).
func (h *Handler) galCommands() {
	if _, ok := h.commands["Search"]; !ok {
		h.commands["Search"] = command{tag: wbxml.SearchSearch, maxBody: smallBody, run: h.searchGALOnly}
	}
	h.commands["ResolveRecipients"] = command{tag: wbxml.ResolveRecipientsResolveRecipients, maxBody: smallBody, run: h.resolveRecipients}
}

// searchGALOnly is Search without a mailbox to search: the GAL store is
// served as usual, any other store (Mailbox included) is Store status 2,
// invalid request (MS-ASCMD 2.2.3.177.13), as search answers stores it
// does not serve.
func (h *Handler) searchGALOnly(ctx context.Context, s *Session, body *wbxml.Node) (*wbxml.Node, error) {
	st := body.Child(wbxml.SearchStore)
	if st != nil && !strings.EqualFold(strings.TrimSpace(st.ChildText(wbxml.SearchName)), "GAL") {
		return wbxml.E(wbxml.SearchSearch, wbxml.T(wbxml.SearchStatus, strconv.Itoa(searchOK)),
			wbxml.E(wbxml.SearchResponse, storeStatus(searchInvalid))), nil
	}
	return h.search(ctx, s, body)
}

// ResolveRecipients status values, MS-ASCMD 2.2.3.177.12. The top-level
// Status, each Response's, and those of Certificates and Availability each
// have their own table (Picture's are pictureOK and friends, gal.go).
const (
	resolveOK            = 1 // ResolveRecipients: success
	resolveProtocolError = 5 // ResolveRecipients: an invalid parameter, or a limit exceeded
	resolveServerError   = 6 // ResolveRecipients: server error; the client should retry

	resolveResolved         = 1 // Response: resolved to one entry
	resolveAmbiguous        = 2 // Response: ambiguous; the recipients returned are all the suggestions
	resolveAmbiguousPartial = 3 // Response: ambiguous; a partial list, RecipientCount has the total
	resolveNotFound         = 4 // Response: no GAL (or contact) entry

	resolveNoCertificate = 7 // Certificates: the recipient has no valid S/MIME certificate

	resolveFreeBusyTooMany     = 160 // Availability: more than 100 SMTP addresses in the request
	resolveFreeBusyUnavailable = 163 // Availability: free/busy cannot be retrieved; do not reissue
)

// ResolveRecipients bounds.
const (
	// resolveMaxTo bounds the To elements of one request: more than 1000
	// is undefined (MS-ASCMD 2.2.3.183), answered with status 5 here.
	resolveMaxTo = 1000
	// resolveMaxToLen is the longest To (MS-ASCMD 6.31: maxLength 256).
	resolveMaxToLen = 256
	// resolveMaxFreeBusy is the most SMTP addresses a request asking for
	// Availability may carry (MS-ASCMD 2.2.3.183); past it each
	// Availability is status 160.
	resolveMaxFreeBusy = 100
	// resolveDefaultAmbiguous bounds the suggestions for an ambiguous To
	// when the client sets no MaxAmbiguousRecipients (2.2.3.100).
	resolveDefaultAmbiguous = 100
	// recipientTypeGAL is Recipient > Type for a GAL entry (MS-ASCMD
	// 2.2.3.186.5: 1 GAL, 2 contact).
	recipientTypeGAL = 1
)

// resolveRequest is a parsed ResolveRecipients request.
type resolveRequest struct {
	to []string
	// certificates is CertificateRetrieval (MS-ASCMD 2.2.3.24): 1 (or
	// absent) none, 2 full certificates, 3 mini certificates.
	certificates int
	maxAmbiguous int
	// availability is set when free/busy was asked for (14.0+).
	availability bool
	// pictures is Options > Picture (14.1+); nil when not asked for.
	pictures *pictureBudget
}

// parseResolveRequest reads a ResolveRecipients request (MS-ASCMD 2.2.1.15,
// 6.31): To elements and Options > CertificateRetrieval (1-3),
// MaxCertificates and MaxAmbiguousRecipients (0-9999), Availability >
// StartTime, EndTime (14.0+; a valid StartTime required, an EndTime after
// it), Picture > MaxSize, MaxPictures (14.1+). Elements a version does not
// have are ignored. ok is false for a request to answer with status 5: no
// To, more than resolveMaxTo, an empty To or one longer than 256, or an
// option out of its range.
func parseResolveRequest(body *wbxml.Node, version string) (resolveRequest, bool) {
	rq := resolveRequest{maxAmbiguous: resolveDefaultAmbiguous}
	if body == nil {
		return rq, false
	}
	for to := range body.Each(wbxml.ResolveRecipientsTo) {
		v := strings.TrimSpace(to.Text())
		if v == "" || len(to.Value) > resolveMaxToLen {
			return rq, false
		}
		rq.to = append(rq.to, to.Text())
	}
	if len(rq.to) == 0 || len(rq.to) > resolveMaxTo {
		return rq, false
	}
	o := body.Child(wbxml.ResolveRecipientsOptions)
	if o == nil {
		return rq, true
	}
	intIn := func(t wbxml.Tag, lo, hi int, dst *int) bool {
		n := o.Child(t)
		if n == nil {
			return true
		}
		v, err := strconv.Atoi(strings.TrimSpace(n.Text()))
		if err != nil || v < lo || v > hi {
			return false
		}
		*dst = v
		return true
	}
	var maxCerts int
	if !intIn(wbxml.ResolveRecipientsCertificateRetrieval, 1, 3, &rq.certificates) ||
		!intIn(wbxml.ResolveRecipientsMaxCertificates, 0, 9999, &maxCerts) ||
		!intIn(wbxml.ResolveRecipientsMaxAmbiguousRecipients, 0, 9999, &rq.maxAmbiguous) {
		return rq, false
	}
	if a := o.Child(wbxml.ResolveRecipientsAvailability); a != nil && versionAtLeast(version, "14.0") {
		start, err := parseEASTime(a.ChildText(wbxml.ResolveRecipientsStartTime))
		if err != nil {
			return rq, false
		}
		if e := a.Child(wbxml.ResolveRecipientsEndTime); e != nil {
			end, err := parseEASTime(e.Text())
			if err != nil || !end.After(start) {
				return rq, false
			}
		}
		rq.availability = true
	}
	if p := o.Child(wbxml.ResolveRecipientsPicture); p != nil && versionAtLeast(version, "14.1") {
		b, ok := parsePictureOptions(p, wbxml.ResolveRecipientsMaxSize, wbxml.ResolveRecipientsMaxPictures)
		if !ok {
			return rq, false
		}
		rq.pictures = &b
	}
	return rq, true
}

// resolveRecipients runs ResolveRecipients, MS-ASCMD 2.2.1.15, against the
// users of this server (the GAL, gal.go). Each To gets a Response, in
// request order, with Status (2.2.3.177.12):
//
//   - 1 when it names one entry: its email address (case-insensitive; the
//     address of "Name <addr>" counts), else its display name, alias or
//     login exactly, else one entry matching it as a GAL search would;
//   - 2 when several entries match and all are returned, 3 when there are
//     more than MaxAmbiguousRecipients (RecipientCount is the total);
//   - 4 when nothing matches (no Recipient, no RecipientCount).
//
// Recipients are Type 1 (GAL) with DisplayName and EmailAddress. A
// resolved recipient (status 1 only: 2 and 3 carry no certificates or
// free/busy) gets Certificates > Status 7 when certificates were asked for
// (easd keeps no S/MIME certificates) and Availability > Status 163 when
// free/busy was (easd publishes none; 160 past 100 addresses), never an
// error. Pictures (14.1+) follow Options > Picture per To. A malformed
// request is top-level status 5, a store failure status 6.
func (h *Handler) resolveRecipients(ctx context.Context, s *Session, body *wbxml.Node) (*wbxml.Node, error) {
	rq, ok := parseResolveRequest(body, s.Req.Version)
	if !ok {
		s.Log.Info("ResolveRecipients refused: invalid request", "to", len(rq.to))
		return resolveStatus(resolveProtocolError), nil
	}
	dir, err := h.galDirectory(ctx, s.Log)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s.Log.Error("ResolveRecipients: reading the directory", "err", err)
		return resolveStatus(resolveServerError), nil
	}
	freeBusy := resolveFreeBusyUnavailable
	if rq.availability {
		addrs := 0
		for _, to := range rq.to {
			if strings.Contains(to, "@") {
				addrs++
			}
		}
		if addrs > resolveMaxFreeBusy {
			freeBusy = resolveFreeBusyTooMany
		}
	}
	resp := resolveStatus(resolveOK)
	for _, to := range rq.to {
		r, err := h.resolveOne(ctx, dir, to, &rq, freeBusy)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			s.Log.Error("ResolveRecipients: reading a picture", "err", err)
			return resolveStatus(resolveServerError), nil
		}
		resp.Append(r)
	}
	return resp, nil
}

// resolveStatus is ResolveRecipients > Status alone.
func resolveStatus(status int) *wbxml.Node {
	return wbxml.E(wbxml.ResolveRecipientsResolveRecipients, wbxml.T(wbxml.ResolveRecipientsStatus, strconv.Itoa(status)))
}

// resolveOne answers one To: Response > To, Status, RecipientCount,
// Recipient*.
func (h *Handler) resolveOne(ctx context.Context, dir []galEntry, to string, rq *resolveRequest, freeBusy int) (*wbxml.Node, error) {
	matches := resolveMatches(dir, to)
	resp := wbxml.E(wbxml.ResolveRecipientsResponse, wbxml.T(wbxml.ResolveRecipientsTo, to))
	status := resolveResolved
	switch {
	case len(matches) == 0:
		return resp.Append(wbxml.T(wbxml.ResolveRecipientsStatus, strconv.Itoa(resolveNotFound))), nil
	case len(matches) == 1:
	case len(matches) > rq.maxAmbiguous:
		// MaxAmbiguousRecipients bounds the suggestions of an ambiguous
		// To only (MS-ASCMD 2.2.3.100).
		status = resolveAmbiguousPartial
	default:
		status = resolveAmbiguous
	}
	resp.Append(wbxml.T(wbxml.ResolveRecipientsStatus, strconv.Itoa(status)),
		wbxml.T(wbxml.ResolveRecipientsRecipientCount, strconv.Itoa(len(matches))))
	if status == resolveAmbiguousPartial {
		matches = matches[:rq.maxAmbiguous]
	}
	var budget *pictureBudget
	if rq.pictures != nil {
		b := *rq.pictures // MaxPictures counts per To (MS-ASCMD 2.2.3.104.2)
		budget = &b
	}
	for _, e := range matches {
		r := wbxml.E(wbxml.ResolveRecipientsRecipient,
			wbxml.T(wbxml.ResolveRecipientsType, strconv.Itoa(recipientTypeGAL)),
			wbxml.T(wbxml.ResolveRecipientsDisplayName, e.p.DisplayName),
			wbxml.T(wbxml.ResolveRecipientsEmailAddress, e.p.EmailAddress))
		if status == resolveResolved && rq.availability {
			r.Append(wbxml.E(wbxml.ResolveRecipientsAvailability,
				wbxml.T(wbxml.ResolveRecipientsStatus, strconv.Itoa(freeBusy))))
		}
		if status == resolveResolved && rq.certificates >= 2 {
			r.Append(wbxml.E(wbxml.ResolveRecipientsCertificates,
				wbxml.T(wbxml.ResolveRecipientsStatus, strconv.Itoa(resolveNoCertificate)),
				wbxml.T(wbxml.ResolveRecipientsCertificateCount, "0")))
		}
		if budget != nil {
			pic, err := h.pictureNode(ctx, budget, e, wbxml.ResolveRecipientsPicture,
				wbxml.ResolveRecipientsStatus, wbxml.ResolveRecipientsData)
			if err != nil {
				return nil, err
			}
			r.Append(pic)
		}
		resp.Append(r)
	}
	return resp, nil
}

// resolveMatches finds the entries a To names, most specific rule first:
// the email address, then an exact display name, alias or login, then a
// GAL search match (gal.go).
func resolveMatches(dir []galEntry, to string) []*galEntry {
	q := strings.TrimSpace(to)
	if a, err := mail.ParseAddress(q); err == nil {
		q = a.Address
	}
	lq := strings.ToLower(q)
	var out []*galEntry
	for i := range dir {
		if dir[i].email == lq {
			out = append(out, &dir[i])
		}
	}
	if len(out) > 0 {
		return out
	}
	fq := foldSpaces(q)
	for i := range dir {
		e := &dir[i]
		if e.display == fq || (e.alias != "" && e.alias == fq) || strings.EqualFold(e.login, q) {
			out = append(out, e)
		}
	}
	if len(out) > 0 {
		return out
	}
	m := newGALMatcher(q)
	for i := range dir {
		if m.match(&dir[i]) {
			out = append(out, &dir[i])
		}
	}
	return out
}
