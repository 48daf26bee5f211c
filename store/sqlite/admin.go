package sqlite

import (
	"context"
	"errors"
	"time"

	"github.com/easd/easd/store"
)

// Placeholder implementations, replaced by the real ones.

var errTODO = errors.New("sqlite: not implemented yet")

// AddAudit implements store.AdminStore.
func (s *Store) AddAudit(ctx context.Context, e store.AuditEntry) (store.AuditEntry, error) {
	return e, errTODO
}

// Audit implements store.AdminStore.
func (s *Store) Audit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	return nil, errTODO
}

// AddAppPassword implements store.AdminStore.
func (s *Store) AddAppPassword(ctx context.Context, p store.AppPassword) (store.AppPassword, error) {
	return p, errTODO
}

// AppPasswords implements store.AdminStore.
func (s *Store) AppPasswords(ctx context.Context, userID int64) ([]store.AppPassword, error) {
	return nil, errTODO
}

// DeleteAppPassword implements store.AdminStore.
func (s *Store) DeleteAppPassword(ctx context.Context, userID, id int64) error { return errTODO }

// TouchAppPassword implements store.AdminStore.
func (s *Store) TouchAppPassword(ctx context.Context, id int64, at time.Time) error { return errTODO }
