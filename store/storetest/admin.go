package storetest

import (
	"testing"

	"github.com/easd/easd/store"
)

func testAudit(t *testing.T, s store.Store) { t.Fatal("audit conformance test not written yet") }

func testAppPasswords(t *testing.T, s store.Store) {
	t.Fatal("app password conformance test not written yet")
}
