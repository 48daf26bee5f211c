package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/easd/easd/store"
	"github.com/jackc/pgx/v5"
)

// UserSetting returns a per-user setting. store.ErrNotFound if never set.
func (s *Store) UserSetting(ctx context.Context, userID int64, key string) ([]byte, error) {
	var v []byte
	err := s.withConn(ctx, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, `SELECT value FROM user_settings WHERE user_id = $1 AND key = $2`,
			userID, key).Scan(&v)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: setting %q of user %d: %w", key, userID, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: setting %q of user %d: %w", key, userID, err)
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
	_, err := s.exec(ctx, `
		INSERT INTO user_settings (user_id, key, value, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		userID, key, value, s.stamp())
	if pgCode(err) == foreignKeyViolation {
		return fmt.Errorf("postgres: put setting %q: user %d: %w", key, userID, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("postgres: put setting %q of user %d: %w", key, userID, err)
	}
	return nil
}
