package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/easd/easd/store"
	"github.com/jackc/pgx/v5"
)

// AddDevice implements store.Store: TouchDevice with a per-user bound. The
// user's row is locked (FOR NO KEY UPDATE: it serialises AddDevice calls of
// one user, yet leaves other inserts referencing the user unblocked) before
// the devices are counted, so concurrent first contacts of several phones,
// on this instance or another sharing the database, cannot exceed
// maxPerUser.
func (s *Store) AddDevice(ctx context.Context, d store.Device, maxPerUser int) (store.Device, error) {
	d, err := newDevice(d)
	if err != nil {
		return store.Device{}, fmt.Errorf("postgres: add device: %w", err)
	}
	now := s.stamp()
	var got store.Device
	err = s.withTx(ctx, func(tx pgx.Tx) error {
		var uid int64
		err := tx.QueryRow(ctx, `SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE`, d.UserID).Scan(&uid)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("user %d: %w", d.UserID, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if maxPerUser > 0 {
			var n int
			var known bool
			if err := tx.QueryRow(ctx,
				`SELECT count(*), coalesce(bool_or(device_id = $2), false) FROM devices WHERE user_id = $1`,
				d.UserID, d.DeviceID).Scan(&n, &known); err != nil {
				return err
			}
			if !known && n >= maxPerUser {
				return fmt.Errorf("user %d has %d devices, the limit: %w", d.UserID, n, store.ErrLimit)
			}
		}
		got, err = scanDevice(tx.QueryRow(ctx, upsertDevice, deviceArgs(d, now)...))
		return err
	})
	if pgCode(err) == foreignKeyViolation {
		return store.Device{}, fmt.Errorf("postgres: add device %q: user %d: %w", d.DeviceID, d.UserID, store.ErrNotFound)
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("postgres: add device %q: %w", d.DeviceID, err)
	}
	return got, nil
}
