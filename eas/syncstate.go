package eas

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/easd/easd/eas/email"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
)

// mailState is the Sync state of one email collection of one device: what
// the device holds, stored under the SyncKey that the response carrying
// it gave (MS-ASCMD 2.2.3.166.4). It is kept as a compact binary blob.
type mailState struct {
	Epoch string // random per SyncKey 0, so keys of a reset never repeat
	N     uint64 // counter; the key is Epoch-N
	// Parent is the key of the state this one was computed from, and
	// Sent what that response carried: a retry of Parent is answered the
	// same way.
	Parent string
	Sent   sentItems

	Filter int // FilterType the items were chosen with
	// Prefs and MIMESupport are the body options last asked for: a
	// request without Options keeps them (MS-ASCMD 2.2.3.125.6).
	Prefs       []email.BodyPreference
	MIMESupport int
	UIDValidity uint32
	// ModSeq is the HIGHESTMODSEQ up to which flag changes were sent; 0
	// without CONDSTORE.
	ModSeq uint64
	// Last is the folder's STATUS when this state was made: when it is
	// unchanged, nothing in the folder has changed.
	Last  MailStatus
	Items map[uint32]itemState
}

// itemState is what the device holds of one message.
type itemState struct {
	Flags MailFlags
	Date  int64  // internal date, Unix seconds (for FilterType windows)
	Kw    uint32 // hash of the keywords (categories); 0 for none
}

// sentItems records one response's commands.
type sentItems struct {
	Adds, Changes, Deletes, SoftDeletes []uint32
	More                                bool
}

func (st *mailState) key() string { return st.Epoch + "-" + strconv.FormatUint(st.N, 10) }

// nextKey is the key of the state following st.
func (st *mailState) nextKey() string { return st.Epoch + "-" + strconv.FormatUint(st.N+1, 10) }

func kwHash(kw []string) uint32 {
	if len(kw) == 0 {
		return 0
	}
	s := slices.Clone(kw)
	for i := range s {
		s[i] = strings.ToLower(s[i])
	}
	slices.Sort(s)
	h := fnv.New32a()
	for _, k := range s {
		h.Write([]byte(k))
		h.Write([]byte{0})
	}
	return h.Sum32() | 1
}

const mailStateVersion = 2

// marshal encodes st: a version byte, then varints and strings.
func (st *mailState) marshal() []byte {
	b := []byte{mailStateVersion}
	str := func(s string) { b = binary.AppendUvarint(b, uint64(len(s))); b = append(b, s...) }
	u := func(v uint64) { b = binary.AppendUvarint(b, v) }
	uids := func(l []uint32) {
		u(uint64(len(l)))
		var prev uint32
		for _, x := range l {
			b = binary.AppendVarint(b, int64(x)-int64(prev))
			prev = x
		}
	}
	str(st.Epoch)
	u(st.N)
	str(st.Parent)
	uids(st.Sent.Adds)
	uids(st.Sent.Changes)
	uids(st.Sent.Deletes)
	uids(st.Sent.SoftDeletes)
	if st.Sent.More {
		u(1)
	} else {
		u(0)
	}
	u(uint64(st.Filter))
	u(uint64(st.MIMESupport))
	u(uint64(len(st.Prefs)))
	for _, p := range st.Prefs {
		u(uint64(p.Type))
		u(uint64(max(p.TruncationSize, 0)))
		if p.AllOrNone {
			u(1)
		} else {
			u(0)
		}
		u(uint64(max(p.Preview, 0)))
	}
	u(uint64(st.UIDValidity))
	u(st.ModSeq)
	u(uint64(st.Last.UIDValidity))
	u(uint64(st.Last.UIDNext))
	u(uint64(st.Last.Messages))
	u(st.Last.HighestModSeq)
	keys := make([]uint32, 0, len(st.Items))
	for k := range st.Items {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	u(uint64(len(keys)))
	var prev uint32
	for _, k := range keys {
		it := st.Items[k]
		u(uint64(k - prev))
		prev = k
		b = append(b, byte(it.Flags))
		b = binary.AppendVarint(b, it.Date)
		u(uint64(it.Kw))
	}
	return b
}

var errBadState = errors.New("corrupt sync state")

// unmarshalMailState decodes what marshal wrote.
func unmarshalMailState(b []byte) (*mailState, error) {
	if len(b) == 0 || b[0] != mailStateVersion {
		return nil, errBadState
	}
	b = b[1:]
	var err error
	u := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			err = errBadState
			return 0
		}
		b = b[n:]
		return v
	}
	i64 := func() int64 {
		v, n := binary.Varint(b)
		if n <= 0 {
			err = errBadState
			return 0
		}
		b = b[n:]
		return v
	}
	str := func() string {
		n := u()
		if err != nil || n > uint64(len(b)) {
			err = errBadState
			return ""
		}
		s := string(b[:n])
		b = b[n:]
		return s
	}
	uids := func() []uint32 {
		n := u()
		if err != nil || n > uint64(len(b)) {
			err = errBadState
			return nil
		}
		var l []uint32
		var prev int64
		for range n {
			prev += i64()
			l = append(l, uint32(prev))
		}
		return l
	}
	st := &mailState{}
	st.Epoch = str()
	st.N = u()
	st.Parent = str()
	st.Sent.Adds = uids()
	st.Sent.Changes = uids()
	st.Sent.Deletes = uids()
	st.Sent.SoftDeletes = uids()
	st.Sent.More = u() == 1
	st.Filter = int(u())
	st.MIMESupport = int(u())
	np := u()
	if err != nil || np > 16 {
		return nil, errBadState
	}
	for range np {
		p := email.BodyPreference{Type: int(u()), TruncationSize: int64(u() & (1<<62 - 1))}
		p.AllOrNone = u() == 1
		p.Preview = int(u() & (1<<31 - 1))
		st.Prefs = append(st.Prefs, p)
	}
	st.UIDValidity = uint32(u())
	st.ModSeq = u()
	st.Last.UIDValidity = uint32(u())
	st.Last.UIDNext = uint32(u())
	st.Last.Messages = uint32(u())
	st.Last.HighestModSeq = u()
	n := u()
	if err != nil || n > uint64(len(b)) {
		return nil, errBadState
	}
	st.Items = make(map[uint32]itemState, n)
	var prev uint64
	for range n {
		prev += u()
		if len(b) == 0 {
			return nil, errBadState
		}
		it := itemState{Flags: MailFlags(b[0])}
		b = b[1:]
		it.Date = i64()
		it.Kw = uint32(u())
		st.Items[uint32(prev)] = it
	}
	if err != nil {
		return nil, fmt.Errorf("%w", err)
	}
	return st, nil
}
