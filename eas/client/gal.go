package client

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/easd/easd/wbxml"
)

// PictureOptions asks for contact photos (Options > Picture, protocol 14.1
// and later; MS-ASCMD 2.2.3.135).
type PictureOptions struct {
	// MaxSize is the largest photo wanted, in bytes; 0 leaves the limit
	// out.
	MaxSize int
	// MaxPictures is the most photos wanted per query; 0 leaves the limit
	// out.
	MaxPictures int
}

// node builds the Picture element in the code page of its tags.
func (p *PictureOptions) node(pic, maxSize, maxPictures wbxml.Tag) *wbxml.Node {
	n := wbxml.E(pic)
	if p.MaxSize > 0 {
		n.Append(wbxml.T(maxSize, strconv.Itoa(p.MaxSize)))
	}
	if p.MaxPictures > 0 {
		n.Append(wbxml.T(maxPictures, strconv.Itoa(p.MaxPictures)))
	}
	return n
}

// Picture is a contact photo in a response: its Status (1 sent, 173 no
// photo, 174 too large, 175 MaxPictures reached; MS-ASCMD 2.2.3.177.12,
// 2.2.3.177.13) and, with status 1, the JPEG.
type Picture struct {
	// Status is the picture's status.
	Status int
	// Data is the JPEG; nil unless Status is 1.
	Data []byte
}

// picture parses a Picture response element; nil when n is nil.
func picture(n *wbxml.Node, status, data wbxml.Tag) *Picture {
	if n == nil {
		return nil
	}
	return &Picture{Status: atoi(strings.TrimSpace(n.ChildText(status))), Data: n.Child(data).Bytes()}
}

// GALQuery is a Search of the global address list (MS-ASCMD 2.2.1.16,
// Store Name "GAL").
type GALQuery struct {
	// Query is the text searched for (a prefix of names or addresses).
	Query string
	// Range is the zero-based inclusive range of results wanted, "0-9";
	// "" leaves it to the server (0-99).
	Range string
	// Picture asks for photos (14.1 and later); nil asks for none.
	Picture *PictureOptions
}

// GALEntry is one Result of a GAL search: the gal: properties the server
// sent (MS-ASCMD 2.2.3.139.3), "" for those it left out.
type GALEntry struct {
	// DisplayName, Phone, Office, Title, Company and Alias are the
	// gal: elements of those names.
	DisplayName, Phone, Office, Title, Company, Alias string
	// FirstName, LastName, HomePhone, MobilePhone and EmailAddress too.
	FirstName, LastName, HomePhone, MobilePhone, EmailAddress string
	// Picture is gal:Picture; nil when the server sent none.
	Picture *Picture
}

// GALResult is the Store of a GAL search response.
type GALResult struct {
	// Status is the Store's status: 1 success, 2 invalid request, 3
	// server error … (MS-ASCMD 2.2.3.177.13).
	Status int
	// Entries are the matches returned, in the server's order.
	Entries []GALEntry
	// Range is the range of the entries returned ("" when none).
	Range string
	// Total is the number of matches (-1 if the server sent none).
	Total int
	// Raw is the Search element of the response.
	Raw *wbxml.Node
}

// SearchGAL searches the global address list. A failing top-level Status
// is a *StatusError; a Store status other than 1 is a *StatusError
// (Element "Store") returned with the result.
func (c *Client) SearchGAL(ctx context.Context, q GALQuery) (*GALResult, error) {
	store := wbxml.E(wbxml.SearchStore, wbxml.T(wbxml.SearchName, "GAL"), wbxml.T(wbxml.SearchQuery, q.Query))
	opts := wbxml.E(wbxml.SearchOptions)
	if q.Range != "" {
		opts.Append(wbxml.T(wbxml.SearchRange, q.Range))
	}
	if q.Picture != nil {
		opts.Append(q.Picture.node(wbxml.SearchPicture, wbxml.SearchMaxSize, wbxml.SearchMaxPictures))
	}
	if len(opts.Children) > 0 {
		store.Append(opts)
	}
	resp, err := c.Do(ctx, "Search", wbxml.E(wbxml.SearchSearch, store))
	if err != nil {
		return nil, err
	}
	if resp.Body == nil {
		return nil, errors.New("client: Search: empty response")
	}
	sr, err := searchResult(resp.Body)
	if sr == nil {
		return nil, err
	}
	r := &GALResult{Status: sr.Status, Range: sr.Range, Total: sr.Total, Raw: sr.Raw}
	for _, h := range sr.Results {
		p := h.Properties
		r.Entries = append(r.Entries, GALEntry{
			DisplayName: p.ChildText(wbxml.GALDisplayName), Phone: p.ChildText(wbxml.GALPhone),
			Office: p.ChildText(wbxml.GALOffice), Title: p.ChildText(wbxml.GALTitle),
			Company: p.ChildText(wbxml.GALCompany), Alias: p.ChildText(wbxml.GALAlias),
			FirstName: p.ChildText(wbxml.GALFirstName), LastName: p.ChildText(wbxml.GALLastName),
			HomePhone: p.ChildText(wbxml.GALHomePhone), MobilePhone: p.ChildText(wbxml.GALMobilePhone),
			EmailAddress: p.ChildText(wbxml.GALEmailAddress),
			Picture:      picture(p.Child(wbxml.GALPicture), wbxml.GALStatus, wbxml.GALData),
		})
	}
	return r, err
}

// ResolveOptions are the Options of ResolveRecipients (MS-ASCMD 2.2.3.125.4).
type ResolveOptions struct {
	// CertificateRetrieval is 1 (do not retrieve), 2 (full certificates)
	// or 3 (mini certificates); 0 leaves it out.
	CertificateRetrieval int
	// MaxCertificates and MaxAmbiguousRecipients (0-9999); 0 leaves them
	// out.
	MaxCertificates, MaxAmbiguousRecipients int
	// AvailabilityStart and AvailabilityEnd ask for free/busy (14.0 and
	// later) when AvailabilityStart is set; a zero end is left out.
	AvailabilityStart, AvailabilityEnd time.Time
	// Picture asks for photos (14.1 and later); nil asks for none.
	Picture *PictureOptions
}

// Resolution is the Response for one To of ResolveRecipients.
type Resolution struct {
	// To is the recipient as sent.
	To string
	// Status is 1 resolved, 2 ambiguous, 3 ambiguous with a partial list,
	// 4 not resolved (MS-ASCMD 2.2.3.177.12).
	Status int
	// RecipientCount is the number of matches (-1 if the server sent
	// none).
	RecipientCount int
	// Recipients are the entries returned.
	Recipients []Recipient
}

// Recipient is one resolved (or suggested) recipient.
type Recipient struct {
	// Type is 1 for a GAL entry, 2 for a contact (MS-ASCMD 2.2.3.186.5).
	Type int
	// DisplayName and EmailAddress name the recipient.
	DisplayName, EmailAddress string
	// AvailabilityStatus is Availability > Status (1 free/busy sent, 160
	// to 163 not; MS-ASCMD 2.2.3.177.12) and MergedFreeBusy its data; 0
	// and "" without Availability.
	AvailabilityStatus int
	MergedFreeBusy     string
	// CertificatesStatus is Certificates > Status (1 sent, 7 no valid
	// certificate, 8 limit reached), CertificateCount their number and
	// Certificates the base64 certificates (or mini certificates); 0 and
	// nil without Certificates.
	CertificatesStatus int
	CertificateCount   int
	Certificates       []string
	// Picture is the photo; nil when the server sent none.
	Picture *Picture
}

// ResolveResult is a ResolveRecipients response.
type ResolveResult struct {
	// Status is the top-level status: 1 success, 5 protocol error, 6
	// server error.
	Status int
	// Responses has one Resolution per To, in request order.
	Responses []Resolution
	// Raw is the ResolveRecipients element of the response.
	Raw *wbxml.Node
}

// ResolveRecipients asks the server to resolve names or addresses against
// its address list (MS-ASCMD 2.2.1.15). A top-level Status other than 1 is
// a *StatusError returned with the result.
func (c *Client) ResolveRecipients(ctx context.Context, to []string, o ResolveOptions) (*ResolveResult, error) {
	req := wbxml.E(wbxml.ResolveRecipientsResolveRecipients)
	for _, t := range to {
		req.Append(wbxml.T(wbxml.ResolveRecipientsTo, t))
	}
	opts := wbxml.E(wbxml.ResolveRecipientsOptions)
	for _, f := range []struct {
		tag wbxml.Tag
		v   int
	}{
		{wbxml.ResolveRecipientsCertificateRetrieval, o.CertificateRetrieval},
		{wbxml.ResolveRecipientsMaxCertificates, o.MaxCertificates},
		{wbxml.ResolveRecipientsMaxAmbiguousRecipients, o.MaxAmbiguousRecipients},
	} {
		if f.v > 0 {
			opts.Append(wbxml.T(f.tag, strconv.Itoa(f.v)))
		}
	}
	if !o.AvailabilityStart.IsZero() {
		a := wbxml.E(wbxml.ResolveRecipientsAvailability, wbxml.T(wbxml.ResolveRecipientsStartTime, searchDate(o.AvailabilityStart)))
		if !o.AvailabilityEnd.IsZero() {
			a.Append(wbxml.T(wbxml.ResolveRecipientsEndTime, searchDate(o.AvailabilityEnd)))
		}
		opts.Append(a)
	}
	if o.Picture != nil {
		opts.Append(o.Picture.node(wbxml.ResolveRecipientsPicture, wbxml.ResolveRecipientsMaxSize, wbxml.ResolveRecipientsMaxPictures))
	}
	if len(opts.Children) > 0 {
		req.Append(opts)
	}
	resp, err := c.Do(ctx, "ResolveRecipients", req)
	if resp == nil || resp.Body == nil {
		if err == nil {
			err = errors.New("client: ResolveRecipients: empty response")
		}
		return nil, err
	}
	body := resp.Body
	r := &ResolveResult{Status: atoi(strings.TrimSpace(body.ChildText(wbxml.ResolveRecipientsStatus))), Raw: body}
	for n := range body.Each(wbxml.ResolveRecipientsResponse) {
		res := Resolution{To: n.ChildText(wbxml.ResolveRecipientsTo), RecipientCount: -1,
			Status: atoi(strings.TrimSpace(n.ChildText(wbxml.ResolveRecipientsStatus)))}
		if rc := n.Child(wbxml.ResolveRecipientsRecipientCount); rc != nil {
			res.RecipientCount = atoi(strings.TrimSpace(rc.Text()))
		}
		for rn := range n.Each(wbxml.ResolveRecipientsRecipient) {
			rec := Recipient{
				Type:         atoi(strings.TrimSpace(rn.ChildText(wbxml.ResolveRecipientsType))),
				DisplayName:  rn.ChildText(wbxml.ResolveRecipientsDisplayName),
				EmailAddress: rn.ChildText(wbxml.ResolveRecipientsEmailAddress),
				Picture:      picture(rn.Child(wbxml.ResolveRecipientsPicture), wbxml.ResolveRecipientsStatus, wbxml.ResolveRecipientsData),
			}
			if a := rn.Child(wbxml.ResolveRecipientsAvailability); a != nil {
				rec.AvailabilityStatus = atoi(strings.TrimSpace(a.ChildText(wbxml.ResolveRecipientsStatus)))
				rec.MergedFreeBusy = a.ChildText(wbxml.ResolveRecipientsMergedFreeBusy)
			}
			if cs := rn.Child(wbxml.ResolveRecipientsCertificates); cs != nil {
				rec.CertificatesStatus = atoi(strings.TrimSpace(cs.ChildText(wbxml.ResolveRecipientsStatus)))
				rec.CertificateCount = atoi(strings.TrimSpace(cs.ChildText(wbxml.ResolveRecipientsCertificateCount)))
				for _, tag := range []wbxml.Tag{wbxml.ResolveRecipientsCertificate, wbxml.ResolveRecipientsMiniCertificate} {
					for cn := range cs.Each(tag) {
						rec.Certificates = append(rec.Certificates, cn.Text())
					}
				}
			}
			res.Recipients = append(res.Recipients, rec)
		}
		r.Responses = append(r.Responses, res)
	}
	return r, err
}
