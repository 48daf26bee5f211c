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
	if d.DeviceID == "" {
		return store.Device{}, errors.New("postgres: add device: empty device id")
	}
	if d.Access == "" {
		d.Access = store.DeviceAllowed
	}
	if err := checkDevice(d); err != nil {
		return store.Device{}, err
	}
	now := s.stamp()
	var got store.Device
	err := s.withTx(ctx, func(tx pgx.Tx) error {
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
		got, err = scanDevice(tx.QueryRow(ctx, `
			INSERT INTO devices (user_id, device_id, device_type, user_agent, model, imei,
				friendly_name, os, os_language, phone_number, mobile_operator,
				protocol_version, access, policy_key, policy_hash, wipe, first_seen, last_seen)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17)
			ON CONFLICT (user_id, device_id) DO UPDATE SET
				device_type = excluded.device_type,
				user_agent = excluded.user_agent,
				protocol_version = excluded.protocol_version,
				last_seen = excluded.last_seen
			RETURNING `+deviceCols,
			d.UserID, d.DeviceID, d.DeviceType, d.UserAgent, d.Model, d.IMEI,
			d.FriendlyName, d.OS, d.OSLanguage, d.PhoneNumber, d.MobileOperator,
			d.ProtocolVersion, string(d.Access), int64(d.PolicyKey), d.PolicyHash, string(d.Wipe), now))
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
