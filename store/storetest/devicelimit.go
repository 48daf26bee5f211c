package storetest

import (
	"testing"

	"github.com/easd/easd/store"
)

func testAddDeviceLimit(t *testing.T, s store.Store) {
	t.Fatal("AddDevice conformance test not written yet")
}
