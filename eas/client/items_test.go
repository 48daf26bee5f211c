package client_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"testing"

	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/wbxml"
	"github.com/google/go-cmp/cmp"
)

// multipartBody lays parts out as MS-ASCMD 2.2.1.10.1.1 says.
func multipartBody(parts ...[]byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(parts)))
	off := 4 + 8*len(parts)
	for _, p := range parts {
		b = binary.LittleEndian.AppendUint32(b, uint32(off))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
		off += len(p)
	}
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func encode(t *testing.T, n *wbxml.Node) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := wbxml.Encode(&b, n); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestSplitMultipart(t *testing.T) {
	parts, err := client.SplitMultipart(multipartBody([]byte("wbxml"), []byte{}, []byte("\x00\x01\x02")))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]byte{[]byte("wbxml"), {}, {0, 1, 2}}, parts); diff != "" {
		t.Errorf("parts (-want +got):\n%s", diff)
	}
	good := multipartBody([]byte("abc"))
	for name, b := range map[string][]byte{
		"short":          {1, 0},
		"no parts":       {0, 0, 0, 0},
		"negative count": {0xff, 0xff, 0xff, 0xff},
		"table too long": {9, 0, 0, 0, 1, 2, 3, 4},
		"past the end":   good[:len(good)-1],
		"into the table": func() []byte {
			b := bytes.Clone(good)
			binary.LittleEndian.PutUint32(b[4:], 2)
			return b
		}(),
		"negative length": func() []byte {
			b := bytes.Clone(good)
			binary.LittleEndian.PutUint32(b[8:], 0xffffffff)
			return b
		}(),
	} {
		if _, err := client.SplitMultipart(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// attachmentResponse is an ItemOperations answer for file reference "5:1:0",
// with the data in Properties as props holds it.
func attachmentResponse(props ...*wbxml.Node) *wbxml.Node {
	return wbxml.E(wbxml.ItemOperationsItemOperations, wbxml.T(wbxml.ItemOperationsStatus, "1"),
		wbxml.E(wbxml.ItemOperationsResponse, wbxml.E(wbxml.ItemOperationsFetch,
			wbxml.T(wbxml.ItemOperationsStatus, "1"),
			wbxml.T(wbxml.AirSyncBaseFileReference, "5:1:0"),
			wbxml.E(wbxml.ItemOperationsProperties, append([]*wbxml.Node{wbxml.T(wbxml.AirSyncBaseContentType, "image/png")}, props...)...))))
}

func TestFetchAttachment(t *testing.T) {
	data := []byte("\x89PNG\r\n\x1a\n\x00binary")
	c, cs := cannedClient(t, "14.1", func(w http.ResponseWriter, r *http.Request, body *wbxml.Node, n int) {
		switch n {
		case 0: // plain: base64 text
			writeWBXML(t, w, attachmentResponse(wbxml.T(wbxml.ItemOperationsData, base64.StdEncoding.EncodeToString(data))))
		case 1: // multipart
			w.Header().Set("Content-Type", client.MultipartType)
			w.Write(multipartBody(encode(t, attachmentResponse(wbxml.T(wbxml.ItemOperationsPart, "1"))), data))
		case 2: // OPAQUE data
			writeWBXML(t, w, attachmentResponse(wbxml.O(wbxml.ItemOperationsData, data)))
		case 3: // asked for multipart, answered plainly
			writeWBXML(t, w, attachmentResponse(wbxml.T(wbxml.ItemOperationsData, base64.StdEncoding.EncodeToString(data))))
		case 4:
			writeWBXML(t, w, wbxml.E(wbxml.ItemOperationsItemOperations, wbxml.T(wbxml.ItemOperationsStatus, "1"),
				wbxml.E(wbxml.ItemOperationsResponse, wbxml.E(wbxml.ItemOperationsFetch,
					wbxml.T(wbxml.ItemOperationsStatus, "15"), wbxml.T(wbxml.AirSyncBaseFileReference, "5:1:0")))))
		case 5:
			w.Header().Set("Content-Type", client.MultipartType)
			w.Write(multipartBody(encode(t, wbxml.E(wbxml.ItemOperationsItemOperations, wbxml.T(wbxml.ItemOperationsStatus, "2")))))
		}
	})
	ctx := context.Background()
	for i, multipart := range []bool{false, true, false, true} {
		ct, got, err := c.FetchAttachment(ctx, "5:1:0", multipart)
		if err != nil || ct != "image/png" || !bytes.Equal(got, data) {
			t.Errorf("fetch %d (multipart %v) = %q, %q, %v", i, multipart, ct, got, err)
		}
	}
	_, _, err := c.FetchAttachment(ctx, "5:1:0", false)
	var se *client.StatusError
	if !errors.As(err, &se) || se.Status != 15 || se.Element != "Fetch" {
		t.Errorf("status 15: %v", err)
	}
	_, _, err = c.FetchAttachment(ctx, "5:1:0", true)
	if !errors.As(err, &se) || se.Status != 2 || se.Element != "" {
		t.Errorf("multipart with top-level status 2: %v", err)
	}

	reqs := cs.requests()
	want := wbxml.E(wbxml.ItemOperationsItemOperations, wbxml.E(wbxml.ItemOperationsFetch,
		wbxml.T(wbxml.ItemOperationsStore, "Mailbox"), wbxml.T(wbxml.AirSyncBaseFileReference, "5:1:0")))
	if diff := cmp.Diff(xmlOf(want), reqs[0].Body); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
	for i, want := range []string{"", "T", "", "T"} {
		if got := reqs[i].Header.Get("MS-ASAcceptMultiPart"); got != want {
			t.Errorf("request %d: MS-ASAcceptMultiPart %q, want %q", i, got, want)
		}
	}
}

func TestFetchItem(t *testing.T) {
	mime := []byte("From: a@example.com\r\nSubject: hi\r\n\r\nbody")
	c, cs := cannedClient(t, "14.1", func(w http.ResponseWriter, r *http.Request, body *wbxml.Node, n int) {
		w.Header().Set("Content-Type", client.MultipartType)
		resp := wbxml.E(wbxml.ItemOperationsItemOperations, wbxml.T(wbxml.ItemOperationsStatus, "1"),
			wbxml.E(wbxml.ItemOperationsResponse, wbxml.E(wbxml.ItemOperationsFetch,
				wbxml.T(wbxml.ItemOperationsStatus, "1"),
				wbxml.T(wbxml.AirSyncCollectionId, "5"),
				wbxml.T(wbxml.AirSyncServerId, "5:7"),
				wbxml.T(wbxml.AirSyncClass, "Email"),
				wbxml.E(wbxml.ItemOperationsProperties,
					wbxml.T(wbxml.EmailSubject, "hi"),
					wbxml.E(wbxml.AirSyncBaseBody, wbxml.T(wbxml.AirSyncBaseType, "4"),
						wbxml.T(wbxml.AirSyncBaseEstimatedDataSize, "40"), wbxml.T(wbxml.ItemOperationsPart, "1"))))))
		w.Write(multipartBody(encode(t, resp), mime))
	})
	fr, err := c.FetchItem(context.Background(), "5", "5:7", client.FetchOptions{
		BodyPreferences: []client.BodyPreference{{Type: client.BodyMIME}}, MIMESupport: 2, MultiPart: true})
	if err != nil {
		t.Fatal(err)
	}
	if fr.Status != 1 || fr.CollectionID != "5" || fr.ServerID != "5:7" || fr.Class != "Email" ||
		fr.Properties.ChildText(wbxml.EmailSubject) != "hi" || !bytes.Equal(fr.Data, mime) || fr.Raw == nil {
		t.Errorf("FetchItem = %+v", fr)
	}
	want := wbxml.E(wbxml.ItemOperationsItemOperations, wbxml.E(wbxml.ItemOperationsFetch,
		wbxml.T(wbxml.ItemOperationsStore, "Mailbox"), wbxml.T(wbxml.AirSyncCollectionId, "5"), wbxml.T(wbxml.AirSyncServerId, "5:7"),
		wbxml.E(wbxml.ItemOperationsOptions, wbxml.T(wbxml.AirSyncMIMESupport, "2"),
			wbxml.E(wbxml.AirSyncBaseBodyPreference, wbxml.T(wbxml.AirSyncBaseType, "4")))))
	req := cs.requests()[0]
	if diff := cmp.Diff(xmlOf(want), req.Body); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
	if req.Header.Get("MS-ASAcceptMultiPart") != "T" {
		t.Errorf("headers %v", req.Header)
	}
}

func TestEmptyFolderContents(t *testing.T) {
	c, cs := cannedClient(t, "14.1", func(w http.ResponseWriter, r *http.Request, body *wbxml.Node, n int) {
		st := []string{"1", "3"}[n]
		writeWBXML(t, w, wbxml.E(wbxml.ItemOperationsItemOperations, wbxml.T(wbxml.ItemOperationsStatus, "1"),
			wbxml.E(wbxml.ItemOperationsResponse, wbxml.E(wbxml.ItemOperationsEmptyFolderContents,
				wbxml.T(wbxml.ItemOperationsStatus, st), wbxml.T(wbxml.AirSyncCollectionId, "4")))))
	})
	ctx := context.Background()
	if err := c.EmptyFolderContents(ctx, "4", true); err != nil {
		t.Fatal(err)
	}
	var se *client.StatusError
	if err := c.EmptyFolderContents(ctx, "4", false); !errors.As(err, &se) || se.Status != 3 || se.Element != "EmptyFolderContents" {
		t.Errorf("status 3: %v", err)
	}
	want := []string{
		xmlOf(wbxml.E(wbxml.ItemOperationsItemOperations, wbxml.E(wbxml.ItemOperationsEmptyFolderContents,
			wbxml.T(wbxml.AirSyncCollectionId, "4"), wbxml.E(wbxml.ItemOperationsOptions, wbxml.E(wbxml.ItemOperationsDeleteSubFolders))))),
		xmlOf(wbxml.E(wbxml.ItemOperationsItemOperations, wbxml.E(wbxml.ItemOperationsEmptyFolderContents,
			wbxml.T(wbxml.AirSyncCollectionId, "4")))),
	}
	reqs := cs.requests()
	if diff := cmp.Diff(want, []string{reqs[0].Body, reqs[1].Body}); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestGetAttachment(t *testing.T) {
	c, cs := cannedClient(t, "12.1", func(w http.ResponseWriter, r *http.Request, body *wbxml.Node, n int) {
		switch n {
		case 0:
			w.Header().Set("Content-Type", "application/pdf")
			w.Write([]byte("%PDF-1.4"))
		case 1:
			w.Header().Set("Content-Type", "text/plain")
		case 2:
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	ctx := context.Background()
	ct, data, err := c.GetAttachment(ctx, "5:3:1")
	if err != nil || ct != "application/pdf" || string(data) != "%PDF-1.4" {
		t.Errorf("GetAttachment = %q, %q, %v", ct, data, err)
	}
	if ct, data, err := c.GetAttachment(ctx, "5:3:2"); err != nil || ct != "text/plain" || data == nil || len(data) != 0 {
		t.Errorf("empty attachment = %q, %q, %v", ct, data, err)
	}
	var he *client.HTTPError
	if _, _, err := c.GetAttachment(ctx, "5:3:9"); !errors.As(err, &he) || he.Status != 500 {
		t.Errorf("HTTP 500: %v", err)
	}
	req := cs.requests()[0]
	if req.Query.Get("Cmd") != "GetAttachment" || req.Query.Get("AttachmentName") != "5:3:1" || req.Body != "" {
		t.Errorf("request %+v", req)
	}
}

func TestFolderCommands(t *testing.T) {
	c, cs := cannedClient(t, "14.1", func(w http.ResponseWriter, r *http.Request, body *wbxml.Node, n int) {
		switch n {
		case 0:
			writeWBXML(t, w, wbxml.E(wbxml.FolderHierarchyFolderCreate, wbxml.T(wbxml.FolderHierarchyStatus, "1"),
				wbxml.T(wbxml.FolderHierarchySyncKey, "F2"), wbxml.T(wbxml.FolderHierarchyServerId, "42")))
		case 1:
			writeWBXML(t, w, wbxml.E(wbxml.FolderHierarchyFolderUpdate, wbxml.T(wbxml.FolderHierarchyStatus, "1"),
				wbxml.T(wbxml.FolderHierarchySyncKey, "F3")))
		case 2:
			writeWBXML(t, w, wbxml.E(wbxml.FolderHierarchyFolderDelete, wbxml.T(wbxml.FolderHierarchyStatus, "1"),
				wbxml.T(wbxml.FolderHierarchySyncKey, "F4")))
		case 3:
			writeWBXML(t, w, wbxml.E(wbxml.FolderHierarchyFolderDelete, wbxml.T(wbxml.FolderHierarchyStatus, "4")))
		}
	})
	ctx := context.Background()
	key, id, err := c.FolderCreate(ctx, "F1", "0", "Projects", 12)
	if err != nil || key != "F2" || id != "42" {
		t.Errorf("FolderCreate = %q, %q, %v", key, id, err)
	}
	if key, err = c.FolderUpdate(ctx, key, "42", "2", "Old projects"); err != nil || key != "F3" {
		t.Errorf("FolderUpdate = %q, %v", key, err)
	}
	if key, err = c.FolderDelete(ctx, key, "42"); err != nil || key != "F4" {
		t.Errorf("FolderDelete = %q, %v", key, err)
	}
	var se *client.StatusError
	if _, err := c.FolderDelete(ctx, key, "42"); !errors.As(err, &se) || se.Status != 4 || se.Command != "FolderDelete" {
		t.Errorf("status 4: %v", err)
	}
	want := []string{
		xmlOf(wbxml.E(wbxml.FolderHierarchyFolderCreate, wbxml.T(wbxml.FolderHierarchySyncKey, "F1"), wbxml.T(wbxml.FolderHierarchyParentId, "0"),
			wbxml.T(wbxml.FolderHierarchyDisplayName, "Projects"), wbxml.T(wbxml.FolderHierarchyType, "12"))),
		xmlOf(wbxml.E(wbxml.FolderHierarchyFolderUpdate, wbxml.T(wbxml.FolderHierarchySyncKey, "F2"), wbxml.T(wbxml.FolderHierarchyServerId, "42"),
			wbxml.T(wbxml.FolderHierarchyParentId, "2"), wbxml.T(wbxml.FolderHierarchyDisplayName, "Old projects"))),
		xmlOf(wbxml.E(wbxml.FolderHierarchyFolderDelete, wbxml.T(wbxml.FolderHierarchySyncKey, "F3"), wbxml.T(wbxml.FolderHierarchyServerId, "42"))),
	}
	reqs := cs.requests()
	if diff := cmp.Diff(want, []string{reqs[0].Body, reqs[1].Body, reqs[2].Body}); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	if reqs[0].Query.Get("Cmd") != "FolderCreate" || reqs[2].Query.Get("Cmd") != "FolderDelete" {
		t.Errorf("commands %v %v", reqs[0].Query, reqs[2].Query)
	}
}
