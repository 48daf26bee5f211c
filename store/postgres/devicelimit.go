package postgres

import (
	"context"
	"errors"

	"github.com/easd/easd/store"
)

// AddDevice implements store.Store (placeholder, replaced by the real one).
func (s *Store) AddDevice(ctx context.Context, d store.Device, maxPerUser int) (store.Device, error) {
	return d, errors.New("postgres: AddDevice not implemented yet")
}
