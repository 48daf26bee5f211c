package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/easd/easd/store"
)

// UserSetting returns a per-user setting. store.ErrNotFound if never set.
func (s *Store) UserSetting(ctx context.Context, userID int64, key string) ([]byte, error) {
	var v []byte
	err := s.r.QueryRowContext(ctx, `SELECT value FROM user_settings WHERE user_id = ? AND key = ?`,
		userID, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: setting %q of user %d: %w", key, userID, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: setting %q of user %d: %w", key, userID, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// PutUserSetting stores a per-user setting. store.ErrNotFound if the user
// does not exist.
func (s *Store) PutUserSetting(ctx context.Context, userID int64, key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	_, err := s.w.ExecContext(ctx, `
		INSERT INTO user_settings (user_id, key, value, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		userID, key, value, toDB(s.stamp()))
	if isForeignKey(err) {
		return fmt.Errorf("sqlite: put setting %q: user %d: %w", key, userID, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("sqlite: put setting %q of user %d: %w", key, userID, err)
	}
	return nil
}
