package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/easd/easd/store"
)

const userCols = `id, name, password_hash, disabled, created_at, updated_at`

func scanUser(row interface{ Scan(...any) error }) (store.User, error) {
	var u store.User
	var created, updated int64
	if err := row.Scan(&u.ID, &u.Name, &u.PasswordHash, &u.Disabled, &created, &updated); err != nil {
		return store.User{}, err
	}
	u.CreatedAt, u.UpdatedAt = fromDB(created), fromDB(updated)
	return u, nil
}

// CreateUser adds a user. store.ErrExists if the name is taken.
func (s *Store) CreateUser(ctx context.Context, name, passwordHash string) (store.User, error) {
	now := s.stamp()
	res, err := s.w.ExecContext(ctx,
		`INSERT INTO users (name, password_hash, disabled, created_at, updated_at) VALUES (?, ?, 0, ?, ?)`,
		name, passwordHash, toDB(now), toDB(now))
	if isUnique(err) {
		return store.User{}, fmt.Errorf("sqlite: user %q: %w", name, store.ErrExists)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("sqlite: create user %q: %w", name, err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return store.User{}, fmt.Errorf("sqlite: create user %q: %w", name, err)
	}
	return store.User{ID: id, Name: name, PasswordHash: passwordHash, CreatedAt: now, UpdatedAt: now}, nil
}

// User returns the user by name. store.ErrNotFound if absent.
func (s *Store) User(ctx context.Context, name string) (store.User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return store.User{}, fmt.Errorf("sqlite: user %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("sqlite: user %q: %w", name, err)
	}
	return u, nil
}

// Users lists all users ordered by name (byte order).
func (s *Store) Users(ctx context.Context) ([]store.User, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+userCols+` FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: users: %w", err)
	}
	defer rows.Close()
	var us []store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: users: %w", err)
		}
		us = append(us, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: users: %w", err)
	}
	return us, nil
}

// updateUser runs one UPDATE of the named user; store.ErrNotFound if absent.
func (s *Store) updateUser(ctx context.Context, name, what, set string, arg any) error {
	res, err := s.w.ExecContext(ctx, `UPDATE users SET `+set+` = ?, updated_at = ? WHERE name = ?`,
		arg, toDB(s.stamp()), name)
	if err != nil {
		return fmt.Errorf("sqlite: %s of user %q: %w", what, name, err)
	}
	return affected(res, "user %q", name)
}

// SetPassword replaces the user's password hash. store.ErrNotFound if absent.
func (s *Store) SetPassword(ctx context.Context, name, passwordHash string) error {
	return s.updateUser(ctx, name, "set password", "password_hash", passwordHash)
}

// SetDisabled enables or disables the user. store.ErrNotFound if absent.
func (s *Store) SetDisabled(ctx context.Context, name string, disabled bool) error {
	return s.updateUser(ctx, name, "set disabled", "disabled", disabled)
}

// DeleteUser removes the user; foreign keys cascade to its devices and
// sync state. store.ErrNotFound if absent.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM users WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("sqlite: delete user %q: %w", name, err)
	}
	return affected(res, "user %q", name)
}

// affected returns store.ErrNotFound, described by format and args, if res
// changed no row.
func affected(res sql.Result, format string, args ...any) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite: "+format+": %w", append(args, err)...)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: "+format+": %w", append(args, store.ErrNotFound)...)
	}
	return nil
}

const deviceCols = `id, user_id, device_id, device_type, user_agent, model, imei,
	friendly_name, os, os_language, phone_number, mobile_operator,
	protocol_version, access, policy_key, policy_hash, wipe, first_seen, last_seen`

func scanDevice(row interface{ Scan(...any) error }) (store.Device, error) {
	var d store.Device
	var policyKey, first, last int64
	err := row.Scan(&d.ID, &d.UserID, &d.DeviceID, &d.DeviceType, &d.UserAgent, &d.Model, &d.IMEI,
		&d.FriendlyName, &d.OS, &d.OSLanguage, &d.PhoneNumber, &d.MobileOperator,
		&d.ProtocolVersion, &d.Access, &policyKey, &d.PolicyHash, &d.Wipe, &first, &last)
	if err != nil {
		return store.Device{}, err
	}
	d.PolicyKey = uint32(policyKey)
	d.FirstSeen, d.LastSeen = fromDB(first), fromDB(last)
	return d, nil
}

// checkDevice validates the enumerated fields of d.
func checkDevice(d store.Device) error {
	if err := checkAccess(d.Access); err != nil {
		return fmt.Errorf("sqlite: device %q: %w", d.DeviceID, err)
	}
	if err := checkWipe(d.Wipe); err != nil {
		return fmt.Errorf("sqlite: device %q: %w", d.DeviceID, err)
	}
	return nil
}

// checkAccess reports an error unless a is a known DeviceAccess.
func checkAccess(a store.DeviceAccess) error {
	switch a {
	case store.DeviceAllowed, store.DeviceBlocked, store.DeviceQuarantined:
		return nil
	}
	return fmt.Errorf("invalid access %q", a)
}

// checkWipe reports an error unless w is a known WipeState.
func checkWipe(w store.WipeState) error {
	switch w {
	case store.WipeNone, store.WipePending, store.WipeAccountOnly, store.WipeAcknowledged:
		return nil
	}
	return fmt.Errorf("invalid wipe state %q", w)
}

// upsertDevice inserts a device (args: deviceArgs) or, when it exists,
// updates its DeviceType, UserAgent, ProtocolVersion and LastSeen, and
// returns its row.
const upsertDevice = `
	INSERT INTO devices (user_id, device_id, device_type, user_agent, model, imei,
		friendly_name, os, os_language, phone_number, mobile_operator,
		protocol_version, access, policy_key, policy_hash, wipe, first_seen, last_seen)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (user_id, device_id) DO UPDATE SET
		device_type = excluded.device_type,
		user_agent = excluded.user_agent,
		protocol_version = excluded.protocol_version,
		last_seen = excluded.last_seen
	RETURNING ` + deviceCols

// deviceArgs are upsertDevice's arguments; now is already in the
// database's time format.
func deviceArgs(d store.Device, now any) []any {
	return []any{d.UserID, d.DeviceID, d.DeviceType, d.UserAgent, d.Model, d.IMEI,
		d.FriendlyName, d.OS, d.OSLanguage, d.PhoneNumber, d.MobileOperator,
		d.ProtocolVersion, d.Access, int64(d.PolicyKey), d.PolicyHash, d.Wipe, now, now}
}

// newDevice checks a device about to be registered and fills in the
// default Access.
func newDevice(d store.Device) (store.Device, error) {
	if d.DeviceID == "" {
		return d, errors.New("empty device id")
	}
	if d.Access == "" {
		d.Access = store.DeviceAllowed
	}
	return d, checkDevice(d)
}

// TouchDevice registers the device on first contact, with all fields of d
// and Access d.Access (DeviceAllowed when empty), or else updates its
// DeviceType, UserAgent, ProtocolVersion and LastSeen. It returns the
// stored record; store.ErrNotFound if the user does not exist.
func (s *Store) TouchDevice(ctx context.Context, d store.Device) (store.Device, error) {
	d, err := newDevice(d)
	if err != nil {
		return store.Device{}, fmt.Errorf("sqlite: touch device: %w", err)
	}
	now := toDB(s.stamp())
	got, err := scanDevice(s.w.QueryRowContext(ctx, upsertDevice, deviceArgs(d, now)...))
	if isForeignKey(err) {
		return store.Device{}, fmt.Errorf("sqlite: touch device %q: user %d: %w", d.DeviceID, d.UserID, store.ErrNotFound)
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("sqlite: touch device %q: %w", d.DeviceID, err)
	}
	return got, nil
}

// Device returns one device of a user. store.ErrNotFound if absent.
func (s *Store) Device(ctx context.Context, userID int64, deviceID string) (store.Device, error) {
	d, err := scanDevice(s.r.QueryRowContext(ctx,
		`SELECT `+deviceCols+` FROM devices WHERE user_id = ? AND device_id = ?`, userID, deviceID))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Device{}, fmt.Errorf("sqlite: device %q of user %d: %w", deviceID, userID, store.ErrNotFound)
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("sqlite: device %q of user %d: %w", deviceID, userID, err)
	}
	return d, nil
}

// Devices lists a user's devices ordered by DeviceID (byte order).
func (s *Store) Devices(ctx context.Context, userID int64) ([]store.Device, error) {
	rows, err := s.r.QueryContext(ctx,
		`SELECT `+deviceCols+` FROM devices WHERE user_id = ? ORDER BY device_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: devices of user %d: %w", userID, err)
	}
	defer rows.Close()
	var ds []store.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: devices of user %d: %w", userID, err)
		}
		ds = append(ds, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: devices of user %d: %w", userID, err)
	}
	return ds, nil
}

// UpdateDevice stores the protocol-owned fields of d, selected by d.ID:
// DeviceType, UserAgent, the device information, ProtocolVersion, PolicyKey
// and PolicyHash. It never changes Access or Wipe (see SetDeviceAccess and
// SetDeviceWipe), nor UserID, DeviceID, FirstSeen and LastSeen.
// store.ErrNotFound if absent.
func (s *Store) UpdateDevice(ctx context.Context, d store.Device) error {
	res, err := s.w.ExecContext(ctx, `
		UPDATE devices SET device_type = ?, user_agent = ?, model = ?, imei = ?,
			friendly_name = ?, os = ?, os_language = ?, phone_number = ?,
			mobile_operator = ?, protocol_version = ?, policy_key = ?, policy_hash = ?
		WHERE id = ?`,
		d.DeviceType, d.UserAgent, d.Model, d.IMEI, d.FriendlyName, d.OS, d.OSLanguage,
		d.PhoneNumber, d.MobileOperator, d.ProtocolVersion, int64(d.PolicyKey), d.PolicyHash, d.ID)
	if err != nil {
		return fmt.Errorf("sqlite: update device %d: %w", d.ID, err)
	}
	return affected(res, "device %d", d.ID)
}

// SetDeviceAccess sets only the Access of the device with the given id.
// store.ErrNotFound if absent.
func (s *Store) SetDeviceAccess(ctx context.Context, id int64, access store.DeviceAccess) error {
	if err := checkAccess(access); err != nil {
		return fmt.Errorf("sqlite: set access of device %d: %w", id, err)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE devices SET access = ? WHERE id = ?`, string(access), id)
	if err != nil {
		return fmt.Errorf("sqlite: set access of device %d: %w", id, err)
	}
	return affected(res, "device %d", id)
}

// SetDeviceWipe sets only the Wipe state of the device with the given id to
// to: unconditionally when from is empty, otherwise only if the current
// state is one of from, in one UPDATE. It reports whether the update was
// applied. store.ErrNotFound if the device does not exist.
func (s *Store) SetDeviceWipe(ctx context.Context, id int64, to store.WipeState, from ...store.WipeState) (bool, error) {
	if err := checkWipe(to); err != nil {
		return false, fmt.Errorf("sqlite: set wipe of device %d: %w", id, err)
	}
	query := `UPDATE devices SET wipe = ? WHERE id = ?`
	args := []any{string(to), id}
	if len(from) > 0 {
		query += ` AND wipe IN (?` + strings.Repeat(`, ?`, len(from)-1) + `)`
		for _, f := range from {
			if err := checkWipe(f); err != nil {
				return false, fmt.Errorf("sqlite: set wipe of device %d: from: %w", id, err)
			}
			args = append(args, string(f))
		}
	}
	var changed bool
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n > 0 {
			changed = true
			return nil
		}
		// Nothing matched: no such device, or another wipe state.
		var exists bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM devices WHERE id = ?)`, id).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return store.ErrNotFound
		}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return false, fmt.Errorf("sqlite: device %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("sqlite: set wipe of device %d: %w", id, err)
	}
	return changed, nil
}

// DeleteDevice removes a device; foreign keys cascade to its sync state.
// store.ErrNotFound if absent.
func (s *Store) DeleteDevice(ctx context.Context, id int64) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM devices WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("sqlite: delete device %d: %w", id, err)
	}
	return affected(res, "device %d", id)
}

// PutSyncState stores st as the newest state of its collection (stamping
// CreatedAt) and deletes all but the newest two states of that collection,
// in one transaction. store.ErrNotFound if the device does not exist.
func (s *Store) PutSyncState(ctx context.Context, st store.SyncState) error {
	data := st.Data
	if data == nil {
		data = []byte{}
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var seq int64
		// A missing device fails the insert's foreign key check.
		err := tx.QueryRowContext(ctx, `
			SELECT coalesce(max(seq), 0) + 1 FROM sync_states WHERE device_id = ? AND collection = ?`,
			st.DeviceID, st.Collection).Scan(&seq)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO sync_states (device_id, collection, sync_key, data, created_at, seq)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (device_id, collection, sync_key) DO UPDATE SET
				data = excluded.data, created_at = excluded.created_at, seq = excluded.seq`,
			st.DeviceID, st.Collection, st.SyncKey, data, toDB(s.stamp()), seq); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `
			DELETE FROM sync_states WHERE device_id = ? AND collection = ? AND seq < (
				SELECT seq FROM sync_states WHERE device_id = ? AND collection = ?
				ORDER BY seq DESC LIMIT 1 OFFSET 1)`,
			st.DeviceID, st.Collection, st.DeviceID, st.Collection)
		return err
	})
	if isForeignKey(err) {
		return fmt.Errorf("sqlite: put sync state: device %d: %w", st.DeviceID, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("sqlite: put sync state of device %d collection %q: %w", st.DeviceID, st.Collection, err)
	}
	return nil
}

// SyncState returns the state stored under the key. store.ErrNotFound if
// absent.
func (s *Store) SyncState(ctx context.Context, deviceID int64, collection, syncKey string) (store.SyncState, error) {
	st := store.SyncState{DeviceID: deviceID, Collection: collection, SyncKey: syncKey}
	var created int64
	err := s.r.QueryRowContext(ctx, `
		SELECT data, created_at FROM sync_states
		WHERE device_id = ? AND collection = ? AND sync_key = ?`,
		deviceID, collection, syncKey).Scan(&st.Data, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return store.SyncState{}, fmt.Errorf("sqlite: sync state %q of device %d collection %q: %w",
			syncKey, deviceID, collection, store.ErrNotFound)
	}
	if err != nil {
		return store.SyncState{}, fmt.Errorf("sqlite: sync state %q of device %d collection %q: %w",
			syncKey, deviceID, collection, err)
	}
	if st.Data == nil {
		st.Data = []byte{}
	}
	st.CreatedAt = fromDB(created)
	return st, nil
}

// LatestSyncState returns the newest state of one collection of a
// device. store.ErrNotFound if none.
func (s *Store) LatestSyncState(ctx context.Context, deviceID int64, collection string) (store.SyncState, error) {
	st := store.SyncState{DeviceID: deviceID, Collection: collection}
	var created int64
	err := s.r.QueryRowContext(ctx, `
		SELECT sync_key, data, created_at FROM sync_states
		WHERE device_id = ? AND collection = ?
		ORDER BY seq DESC LIMIT 1`,
		deviceID, collection).Scan(&st.SyncKey, &st.Data, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return store.SyncState{}, fmt.Errorf("sqlite: latest sync state of device %d collection %q: %w", deviceID, collection, store.ErrNotFound)
	}
	if err != nil {
		return store.SyncState{}, fmt.Errorf("sqlite: latest sync state of device %d collection %q: %w", deviceID, collection, err)
	}
	if st.Data == nil {
		st.Data = []byte{}
	}
	st.CreatedAt = fromDB(created)
	return st, nil
}

// DeleteSyncStates removes every state of one collection of a device, or
// of every collection when collection is "*".
func (s *Store) DeleteSyncStates(ctx context.Context, deviceID int64, collection string) error {
	var err error
	if collection == "*" {
		_, err = s.w.ExecContext(ctx, `DELETE FROM sync_states WHERE device_id = ?`, deviceID)
	} else {
		_, err = s.w.ExecContext(ctx, `DELETE FROM sync_states WHERE device_id = ? AND collection = ?`,
			deviceID, collection)
	}
	if err != nil {
		return fmt.Errorf("sqlite: delete sync states of device %d collection %q: %w", deviceID, collection, err)
	}
	return nil
}
