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
	if d.DeviceID == "" {
		return store.Device{}, errors.New("sqlite: add device: empty device id")
	}
	if d.Access == "" {
		d.Access = store.DeviceAllowed
	}
	if err := checkDevice(d); err != nil {
		return store.Device{}, err
	}
	now := toDB(s.stamp())
	var got store.Device
	err := s.inTx(ctx, func(tx *sql.Tx) error {
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
		got, err = scanDevice(tx.QueryRowContext(ctx, `
			INSERT INTO devices (user_id, device_id, device_type, user_agent, model, imei,
				friendly_name, os, os_language, phone_number, mobile_operator,
				protocol_version, access, policy_key, policy_hash, wipe, first_seen, last_seen)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (user_id, device_id) DO UPDATE SET
				device_type = excluded.device_type,
				user_agent = excluded.user_agent,
				protocol_version = excluded.protocol_version,
				last_seen = excluded.last_seen
			RETURNING `+deviceCols,
			d.UserID, d.DeviceID, d.DeviceType, d.UserAgent, d.Model, d.IMEI,
			d.FriendlyName, d.OS, d.OSLanguage, d.PhoneNumber, d.MobileOperator,
			d.ProtocolVersion, d.Access, int64(d.PolicyKey), d.PolicyHash, d.Wipe, now, now))
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
