package eas

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/easd/easd/store"
	"github.com/easd/easd/wbxml"
)

// Settings status values, MS-ASCMD 2.2.3.177.15: the same table serves the
// top-level Settings element and each section (Oof, DeviceInformation,
// UserInformation, DevicePassword, RightsManagementInformation).
const (
	settingsOK                   = 1
	settingsProtocolError        = 2
	settingsInvalidArguments     = 5
	settingsConflictingArguments = 6
	settingsDeniedByPolicy       = 7
)

// oofSettingKey is the per-user setting that holds the Oof state as JSON.
const oofSettingKey = "oof"

// maxOofReplyBytes bounds one stored Oof reply message; a larger one gets
// Oof status 5 instead of filling the store with a request-sized blob.
const maxOofReplyBytes = 32 << 10

// settings runs the Settings command, MS-ASCMD 2.2.1.18. The response
// starts with Settings > Status, then has one element per requested
// section, in request order. A request without any section we know is a
// protocol error (Settings status 2); unknown elements next to known ones
// are ignored. Store failures are server errors (common status 110).
func (h *Handler) settings(ctx context.Context, s *Session, body *wbxml.Node) (*wbxml.Node, error) {
	status := wbxml.T(wbxml.SettingsStatus, strconv.Itoa(settingsOK))
	resp := wbxml.E(wbxml.SettingsSettings, status)
	handled := 0
	var children []*wbxml.Node
	if body != nil {
		children = body.Children
	}
	for _, c := range children {
		var out *wbxml.Node
		var err error
		switch c.Tag {
		case wbxml.SettingsOof:
			out, err = h.settingsOof(ctx, s, c)
		case wbxml.SettingsDeviceInformation:
			out, err = h.settingsDeviceInformation(ctx, s, c)
		case wbxml.SettingsUserInformation:
			out = h.settingsUserInformation(s, c)
		case wbxml.SettingsDevicePassword:
			out = settingsDevicePassword(s, c)
		case wbxml.SettingsRightsManagementInformation:
			out = settingsRightsManagement(c)
		default:
			s.Log.Debug("Settings: ignoring unknown element", "element", c.Tag.Name())
			continue
		}
		if err != nil {
			return nil, err
		}
		resp.Append(out)
		handled++
	}
	if handled == 0 {
		s.Log.Info("Settings request without a known section")
		status.Value = []byte(strconv.Itoa(settingsProtocolError))
	}
	return resp, nil
}

// section returns a response section: tag > Status, children.
func section(tag wbxml.Tag, status int, children ...*wbxml.Node) *wbxml.Node {
	return wbxml.E(tag, append([]*wbxml.Node{wbxml.T(wbxml.SettingsStatus, strconv.Itoa(status))}, children...)...)
}

// settingsDeviceInformation stores DeviceInformation > Set (MS-ASCMD
// 2.2.3.45) in the device. UserAgent is stored too, though the next
// request's User-Agent header replaces it; EnableOutboundSMS is ignored
// (easd does not sync SMS).
func (h *Handler) settingsDeviceInformation(ctx context.Context, s *Session, n *wbxml.Node) (*wbxml.Node, error) {
	set := n.Child(wbxml.SettingsSet)
	if set == nil {
		return section(wbxml.SettingsDeviceInformation, settingsProtocolError), nil
	}
	if ua := set.Child(wbxml.SettingsUserAgent); ua != nil {
		s.Device.UserAgent = truncate(ua.Text(), 256)
	}
	if set.Child(wbxml.SettingsEnableOutboundSMS) != nil {
		s.Log.Debug("Settings: EnableOutboundSMS ignored", "value", set.ChildText(wbxml.SettingsEnableOutboundSMS))
	}
	if err := h.deviceInformation(ctx, s, set); err != nil {
		return nil, err
	}
	return section(wbxml.SettingsDeviceInformation, settingsOK), nil
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// settingsUserInformation answers UserInformation > Get (MS-ASCMD
// 2.2.3.192). Before 14.1 the addresses sit in Get > EmailAddresses >
// SMTPAddress; from 14.1 in Get > Accounts > Account > UserDisplayName,
// EmailAddresses > SMTPAddress, PrimarySmtpAddress (2.2.3.2, 2.2.3.57,
// 2.2.3.138). The primary account has no AccountId (2.2.3.3.2). easd knows
// one address per user and no separate display name: the login is used.
func (h *Handler) settingsUserInformation(s *Session, n *wbxml.Node) *wbxml.Node {
	if n.Child(wbxml.SettingsGet) == nil {
		return section(wbxml.SettingsUserInformation, settingsProtocolError)
	}
	addr := primaryAddress(s.User.Name, h.cfg.Domain)
	var get *wbxml.Node
	if versionAtLeast(s.Req.Version, "14.1") {
		get = wbxml.E(wbxml.SettingsGet, wbxml.E(wbxml.SettingsAccounts, wbxml.E(wbxml.SettingsAccount,
			wbxml.T(wbxml.SettingsUserDisplayName, s.User.Name),
			wbxml.E(wbxml.SettingsEmailAddresses,
				wbxml.T(wbxml.SettingsSmtpAddress, addr),
				wbxml.T(wbxml.SettingsPrimarySmtpAddress, addr)))))
	} else {
		get = wbxml.E(wbxml.SettingsGet, wbxml.E(wbxml.SettingsEmailAddresses, wbxml.T(wbxml.SettingsSmtpAddress, addr)))
	}
	return section(wbxml.SettingsUserInformation, settingsOK, get)
}

// primaryAddress is a user's mail address: the login when it is one,
// else login@domain when a domain is configured, else the bare login.
func primaryAddress(login, domain string) string {
	if strings.Contains(login, "@") || domain == "" {
		return login
	}
	return login + "@" + domain
}

// settingsDevicePassword answers DevicePassword > Set (MS-ASCMD 2.2.3.46)
// with status 7, denied by policy: the policy easd sends has
// PasswordRecoveryEnabled 0 (MS-ASPROV 2.2.2.43), i.e. the server does not
// store recovery passwords, so claiming success would let the user believe
// a recovery password exists. The password is neither stored nor logged.
func settingsDevicePassword(s *Session, n *wbxml.Node) *wbxml.Node {
	if n.Path(wbxml.SettingsSet, wbxml.SettingsPassword) == nil {
		return section(wbxml.SettingsDevicePassword, settingsProtocolError)
	}
	s.Log.Info("Settings: recovery password refused (PasswordRecoveryEnabled is 0)")
	return section(wbxml.SettingsDevicePassword, settingsDeniedByPolicy)
}

// settingsRightsManagement answers RightsManagementInformation > Get
// (MS-ASCMD 2.2.3.156) with an empty template list (MS-ASRM 2.2.2.17):
// easd has no IRM server, and an empty list tells the client so without
// failing the request.
func settingsRightsManagement(n *wbxml.Node) *wbxml.Node {
	if n.Child(wbxml.SettingsGet) == nil {
		return section(wbxml.SettingsRightsManagementInformation, settingsProtocolError)
	}
	return section(wbxml.SettingsRightsManagementInformation, settingsOK,
		wbxml.E(wbxml.SettingsGet, wbxml.E(wbxml.RightsManagementRightsManagementTemplates)))
}

// Oof states, MS-ASCMD 2.2.3.124.
const (
	oofDisabled  = 0
	oofGlobal    = 1
	oofTimeBased = 2
)

// oofAudiences are the OofMessage audiences (MS-ASCMD 2.2.3.123), in the
// order the Get response lists them.
var oofAudiences = []struct {
	key string
	tag wbxml.Tag
}{
	{"internal", wbxml.SettingsAppliesToInternal},
	{"externalKnown", wbxml.SettingsAppliesToExternalKnown},
	{"externalUnknown", wbxml.SettingsAppliesToExternalUnknown},
}

// oofSettings is a user's Oof state as stored (JSON under oofSettingKey).
// Applying it to incoming mail is not done yet.
type oofSettings struct {
	State int       `json:"state"`
	Start time.Time `json:"start,omitzero"`
	End   time.Time `json:"end,omitzero"`
	// Messages are keyed by audience (oofAudiences keys).
	Messages map[string]oofMessage `json:"messages,omitempty"`
}

type oofMessage struct {
	Enabled  bool   `json:"enabled"`
	Reply    string `json:"reply,omitempty"`
	BodyType string `json:"bodyType,omitempty"` // "Text" or "HTML"
}

// settingsOof runs Oof > Get or Oof > Set (MS-ASCMD 2.2.3.122). Status 2
// for a missing or malformed structure, 5 for a bad value, 6 for Get and
// Set together.
func (h *Handler) settingsOof(ctx context.Context, s *Session, n *wbxml.Node) (*wbxml.Node, error) {
	get, set := n.Child(wbxml.SettingsGet), n.Child(wbxml.SettingsSet)
	switch {
	case get != nil && set != nil:
		return section(wbxml.SettingsOof, settingsConflictingArguments), nil
	case get == nil && set == nil:
		return section(wbxml.SettingsOof, settingsProtocolError), nil
	}
	cur, err := h.loadOof(ctx, s)
	if err != nil {
		return nil, err
	}
	if get != nil {
		bt, ok := bodyType(get.Child(wbxml.SettingsBodyType), "Text")
		if !ok {
			return section(wbxml.SettingsOof, settingsInvalidArguments), nil
		}
		return section(wbxml.SettingsOof, settingsOK, oofGet(cur, bt)), nil
	}
	next, st := applyOofSet(cur, set)
	if st != settingsOK {
		s.Log.Info("Settings: Oof Set refused", "status", st)
		return section(wbxml.SettingsOof, st), nil
	}
	b, err := json.Marshal(next)
	if err != nil {
		return nil, err
	}
	if err := h.deps.Store.PutUserSetting(ctx, s.User.ID, oofSettingKey, b); err != nil {
		return nil, err
	}
	s.Log.Info("Settings: Oof set", "state", next.State)
	return section(wbxml.SettingsOof, settingsOK), nil
}

// loadOof returns the stored Oof state; never set means disabled. A record
// that does not decode is logged and treated as never set, so that the
// next Set repairs it instead of every request failing.
func (h *Handler) loadOof(ctx context.Context, s *Session) (oofSettings, error) {
	var o oofSettings
	b, err := h.deps.Store.UserSetting(ctx, s.User.ID, oofSettingKey)
	if errors.Is(err, store.ErrNotFound) {
		return o, nil
	}
	if err != nil {
		return o, err
	}
	if err := json.Unmarshal(b, &o); err != nil {
		s.Log.Error("stored Oof setting does not decode; treated as disabled", "err", err)
		return oofSettings{}, nil
	}
	return o, nil
}

// oofGet builds Oof > Get: OofState, StartTime and EndTime when time-based,
// and one OofMessage per audience (MS-ASCMD 2.2.3.122). A message is
// returned as stored: easd does not convert between Text and HTML, so its
// BodyType may differ from the requested one (want); want only labels
// audiences without a stored message.
func oofGet(o oofSettings, want string) *wbxml.Node {
	get := wbxml.E(wbxml.SettingsGet, wbxml.T(wbxml.SettingsOofState, strconv.Itoa(o.State)))
	if o.State == oofTimeBased && !o.Start.IsZero() && !o.End.IsZero() {
		get.Append(wbxml.T(wbxml.SettingsStartTime, formatEASTime(o.Start)),
			wbxml.T(wbxml.SettingsEndTime, formatEASTime(o.End)))
	}
	for _, a := range oofAudiences {
		m := o.Messages[a.key]
		bt := want
		if m.Reply != "" && m.BodyType != "" {
			bt = m.BodyType
		}
		enabled := "0"
		if m.Enabled {
			enabled = "1"
		}
		get.Append(wbxml.E(wbxml.SettingsOofMessage,
			wbxml.E(a.tag),
			wbxml.T(wbxml.SettingsEnabled, enabled),
			wbxml.T(wbxml.SettingsReplyMessage, m.Reply),
			wbxml.T(wbxml.SettingsBodyType, bt)))
	}
	return get
}

// applyOofSet validates Oof > Set against cur and returns the new state, or
// the Oof status that refuses it; nothing is changed unless all of the
// request is valid. Fields the request leaves out keep their value, so
// that turning Oof off keeps the messages for next time.
func applyOofSet(cur oofSettings, set *wbxml.Node) (oofSettings, int) {
	next := cur
	next.Messages = make(map[string]oofMessage, len(oofAudiences))
	for k, v := range cur.Messages {
		next.Messages[k] = v
	}
	if n := set.Child(wbxml.SettingsOofState); n != nil {
		st, err := strconv.Atoi(strings.TrimSpace(n.Text()))
		if err != nil || st < oofDisabled || st > oofTimeBased {
			return cur, settingsInvalidArguments
		}
		next.State = st
	}

	// StartTime and EndTime come together or not at all, else status 2
	// (MS-ASCMD 2.2.3.176.2). They are kept only for OofState 2; with
	// another state the request succeeds but they are not stored
	// (2.2.3.124).
	sn, en := set.Child(wbxml.SettingsStartTime), set.Child(wbxml.SettingsEndTime)
	if (sn == nil) != (en == nil) {
		return cur, settingsProtocolError
	}
	if sn != nil {
		start, err1 := parseEASTime(sn.Text())
		end, err2 := parseEASTime(en.Text())
		if err1 != nil || err2 != nil {
			return cur, settingsInvalidArguments
		}
		next.Start, next.End = start, end
	}
	if next.State == oofTimeBased {
		if next.Start.IsZero() || next.End.IsZero() {
			return cur, settingsProtocolError // time-based without a range
		}
		if !next.Start.Before(next.End) {
			return cur, settingsInvalidArguments
		}
	} else {
		next.Start, next.End = time.Time{}, time.Time{}
	}

	for msg := range set.Each(wbxml.SettingsOofMessage) {
		key := ""
		for _, a := range oofAudiences {
			if msg.Child(a.tag) != nil {
				if key != "" {
					return cur, settingsProtocolError // audiences are mutually exclusive
				}
				key = a.key
			}
		}
		if key == "" {
			return cur, settingsProtocolError
		}
		m := next.Messages[key]
		if n := msg.Child(wbxml.SettingsEnabled); n != nil {
			switch strings.TrimSpace(n.Text()) {
			case "1":
				m.Enabled = true
			case "0":
				m.Enabled = false
			default:
				return cur, settingsInvalidArguments
			}
		}
		if rn := msg.Child(wbxml.SettingsReplyMessage); rn != nil {
			// A ReplyMessage needs its BodyType (MS-ASCMD 2.2.3.149).
			btn := msg.Child(wbxml.SettingsBodyType)
			if btn == nil {
				return cur, settingsProtocolError
			}
			bt, ok := bodyType(btn, "")
			if !ok || len(rn.Value) > maxOofReplyBytes {
				return cur, settingsInvalidArguments
			}
			m.Reply, m.BodyType = rn.Text(), bt
		}
		next.Messages[key] = m
	}
	return next, settingsOK
}

// bodyType reads a Settings BodyType (MS-ASCMD 2.2.3.17: Text or HTML,
// matched case-insensitively); def when n is nil.
func bodyType(n *wbxml.Node, def string) (string, bool) {
	if n == nil {
		return def, def != ""
	}
	switch v := strings.TrimSpace(n.Text()); {
	case strings.EqualFold(v, "Text"):
		return "Text", true
	case strings.EqualFold(v, "HTML"):
		return "HTML", true
	}
	return "", false
}

// easTimeFormat is the datetime of MS-ASDTYPE 2.3, always UTC.
const easTimeFormat = "2006-01-02T15:04:05.000Z"

func formatEASTime(t time.Time) string { return t.UTC().Format(easTimeFormat) }

// parseEASTime accepts the MS-ASDTYPE 2.3 datetime, any RFC 3339 time, and
// the compact form 20060102T150405Z some clients send.
func parseEASTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		var err2 error
		if t, err2 = time.Parse("20060102T150405Z", s); err2 != nil {
			return time.Time{}, err
		}
	}
	return t.UTC(), nil
}
