package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/easd/easd/store"
)

// AddDevice implements store.Store: TouchDevice with a per-user bound. The
// count and the insert are one write transaction (BEGIN IMMEDIATE on the
// single writer connection), so concurrent first contacts cannot exceed
// maxPerUser.
func (s *Store) AddDevice(ctx context.Context, d store.Device, maxPerUser int) (store.Device, error) {
	d, err := newDevice(d)
	if err != nil {
		return store.Device{}, fmt.Errorf("sqlite: add device: %w", err)
	}
	now := toDB(s.stamp())
	var got store.Device
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var uid int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM users WHERE id = ?`, d.UserID).Scan(&uid)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("user %d: %w", d.UserID, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if maxPerUser > 0 {
			var n, known int
			if err := tx.QueryRowContext(ctx,
				`SELECT count(*), coalesce(max(device_id = ?), 0) FROM devices WHERE user_id = ?`,
				d.DeviceID, d.UserID).Scan(&n, &known); err != nil {
				return err
			}
			if known == 0 && n >= maxPerUser {
				return fmt.Errorf("user %d has %d devices, the limit: %w", d.UserID, n, store.ErrLimit)
			}
		}
		got, err = scanDevice(tx.QueryRowContext(ctx, upsertDevice, deviceArgs(d, now)...))
		return err
	})
	if isForeignKey(err) {
		return store.Device{}, fmt.Errorf("sqlite: add device %q: user %d: %w", d.DeviceID, d.UserID, store.ErrNotFound)
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("sqlite: add device %q: %w", d.DeviceID, err)
	}
	return got, nil
}
