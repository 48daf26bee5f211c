package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/easd/easd/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const userCols = `id, name, password_hash, disabled, created_at, updated_at`

func scanUser(row pgx.Row) (store.User, error) {
	var u store.User
	if err := row.Scan(&u.ID, &u.Name, &u.PasswordHash, &u.Disabled, &u.CreatedAt, &u.UpdatedAt); err != nil {
		return store.User{}, err
	}
	u.CreatedAt, u.UpdatedAt = u.CreatedAt.UTC(), u.UpdatedAt.UTC()
	return u, nil
}

// CreateUser adds a user. store.ErrExists if the name is taken.
func (s *Store) CreateUser(ctx context.Context, name, passwordHash string) (store.User, error) {
	u := store.User{Name: name, PasswordHash: passwordHash, CreatedAt: s.stamp()}
	u.UpdatedAt = u.CreatedAt
	err := s.withConn(ctx, func(c *pgx.Conn) error {
		return c.QueryRow(ctx,
			`INSERT INTO users (name, password_hash, disabled, created_at, updated_at)
			VALUES ($1, $2, false, $3, $3) RETURNING id`,
			name, passwordHash, u.CreatedAt).Scan(&u.ID)
	})
	if pgCode(err) == uniqueViolation {
		return store.User{}, fmt.Errorf("postgres: user %q: %w", name, store.ErrExists)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("postgres: create user %q: %w", name, err)
	}
	return u, nil
}

// User returns the user by name. store.ErrNotFound if absent.
func (s *Store) User(ctx context.Context, name string) (store.User, error) {
	var u store.User
	err := s.withConn(ctx, func(c *pgx.Conn) (err error) {
		u, err = scanUser(c.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE name = $1`, name))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return store.User{}, fmt.Errorf("postgres: user %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("postgres: user %q: %w", name, err)
	}
	return u, nil
}

// Users lists all users ordered by name (byte order).
func (s *Store) Users(ctx context.Context) ([]store.User, error) {
	var us []store.User
	err := s.withConn(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, `SELECT `+userCols+` FROM users ORDER BY name`)
		if err != nil {
			return err
		}
		us, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.User, error) { return scanUser(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: users: %w", err)
	}
	return us, nil
}

// exec runs one statement on a pooled connection.
func (s *Store) exec(ctx context.Context, query string, args ...any) (pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	err := s.withConn(ctx, func(c *pgx.Conn) (err error) {
		tag, err = c.Exec(ctx, query, args...)
		return err
	})
	return tag, err
}

// affected returns store.ErrNotFound, described by format and args, if tag
// reports no row changed.
func affected(tag pgconn.CommandTag, format string, args ...any) error {
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: "+format+": %w", append(args, store.ErrNotFound)...)
	}
	return nil
}

// updateUser runs one UPDATE of the named user; store.ErrNotFound if absent.
func (s *Store) updateUser(ctx context.Context, name, what, set string, arg any) error {
	tag, err := s.exec(ctx, `UPDATE users SET `+set+` = $1, updated_at = $2 WHERE name = $3`,
		arg, s.stamp(), name)
	if err != nil {
		return fmt.Errorf("postgres: %s of user %q: %w", what, name, err)
	}
	return affected(tag, "user %q", name)
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
	tag, err := s.exec(ctx, `DELETE FROM users WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("postgres: delete user %q: %w", name, err)
	}
	return affected(tag, "user %q", name)
}

const deviceCols = `id, user_id, device_id, device_type, user_agent, model, imei,
	friendly_name, os, os_language, phone_number, mobile_operator,
	protocol_version, access, policy_key, policy_hash, wipe, first_seen, last_seen`

func scanDevice(row pgx.Row) (store.Device, error) {
	var d store.Device
	var policyKey int64
	err := row.Scan(&d.ID, &d.UserID, &d.DeviceID, &d.DeviceType, &d.UserAgent, &d.Model, &d.IMEI,
		&d.FriendlyName, &d.OS, &d.OSLanguage, &d.PhoneNumber, &d.MobileOperator,
		&d.ProtocolVersion, &d.Access, &policyKey, &d.PolicyHash, &d.Wipe, &d.FirstSeen, &d.LastSeen)
	if err != nil {
		return store.Device{}, err
	}
	d.PolicyKey = uint32(policyKey)
	d.FirstSeen, d.LastSeen = d.FirstSeen.UTC(), d.LastSeen.UTC()
	return d, nil
}

// checkDevice validates the enumerated fields of d.
func checkDevice(d store.Device) error {
	if err := checkAccess(d.Access); err != nil {
		return fmt.Errorf("postgres: device %q: %w", d.DeviceID, err)
	}
	if err := checkWipe(d.Wipe); err != nil {
		return fmt.Errorf("postgres: device %q: %w", d.DeviceID, err)
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
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17)
	ON CONFLICT (user_id, device_id) DO UPDATE SET
		device_type = excluded.device_type,
		user_agent = excluded.user_agent,
		protocol_version = excluded.protocol_version,
		last_seen = excluded.last_seen
	RETURNING ` + deviceCols

// deviceArgs are upsertDevice's arguments.
func deviceArgs(d store.Device, now time.Time) []any {
	return []any{d.UserID, d.DeviceID, d.DeviceType, d.UserAgent, d.Model, d.IMEI,
		d.FriendlyName, d.OS, d.OSLanguage, d.PhoneNumber, d.MobileOperator,
		d.ProtocolVersion, string(d.Access), int64(d.PolicyKey), d.PolicyHash, string(d.Wipe), now}
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
		return store.Device{}, fmt.Errorf("postgres: touch device: %w", err)
	}
	now := s.stamp()
	var got store.Device
	err = s.withConn(ctx, func(c *pgx.Conn) (err error) {
		got, err = scanDevice(c.QueryRow(ctx, upsertDevice, deviceArgs(d, now)...))
		return err
	})
	if pgCode(err) == foreignKeyViolation {
		return store.Device{}, fmt.Errorf("postgres: touch device %q: user %d: %w", d.DeviceID, d.UserID, store.ErrNotFound)
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("postgres: touch device %q: %w", d.DeviceID, err)
	}
	return got, nil
}

// Device returns one device of a user. store.ErrNotFound if absent.
func (s *Store) Device(ctx context.Context, userID int64, deviceID string) (store.Device, error) {
	var d store.Device
	err := s.withConn(ctx, func(c *pgx.Conn) (err error) {
		d, err = scanDevice(c.QueryRow(ctx,
			`SELECT `+deviceCols+` FROM devices WHERE user_id = $1 AND device_id = $2`, userID, deviceID))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Device{}, fmt.Errorf("postgres: device %q of user %d: %w", deviceID, userID, store.ErrNotFound)
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("postgres: device %q of user %d: %w", deviceID, userID, err)
	}
	return d, nil
}

// Devices lists a user's devices ordered by DeviceID (byte order).
func (s *Store) Devices(ctx context.Context, userID int64) ([]store.Device, error) {
	var ds []store.Device
	err := s.withConn(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx,
			`SELECT `+deviceCols+` FROM devices WHERE user_id = $1 ORDER BY device_id`, userID)
		if err != nil {
			return err
		}
		ds, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Device, error) { return scanDevice(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: devices of user %d: %w", userID, err)
	}
	return ds, nil
}

// UpdateDevice stores the protocol-owned fields of d, selected by d.ID:
// DeviceType, UserAgent, the device information, ProtocolVersion, PolicyKey
// and PolicyHash. It never changes Access or Wipe (see SetDeviceAccess and
// SetDeviceWipe), nor UserID, DeviceID, FirstSeen and LastSeen.
// store.ErrNotFound if absent.
func (s *Store) UpdateDevice(ctx context.Context, d store.Device) error {
	tag, err := s.exec(ctx, `
		UPDATE devices SET device_type = $1, user_agent = $2, model = $3, imei = $4,
			friendly_name = $5, os = $6, os_language = $7, phone_number = $8,
			mobile_operator = $9, protocol_version = $10, policy_key = $11, policy_hash = $12
		WHERE id = $13`,
		d.DeviceType, d.UserAgent, d.Model, d.IMEI, d.FriendlyName, d.OS, d.OSLanguage,
		d.PhoneNumber, d.MobileOperator, d.ProtocolVersion, int64(d.PolicyKey), d.PolicyHash, d.ID)
	if err != nil {
		return fmt.Errorf("postgres: update device %d: %w", d.ID, err)
	}
	return affected(tag, "device %d", d.ID)
}

// SetDeviceAccess sets only the Access of the device with the given id.
// store.ErrNotFound if absent.
func (s *Store) SetDeviceAccess(ctx context.Context, id int64, access store.DeviceAccess) error {
	if err := checkAccess(access); err != nil {
		return fmt.Errorf("postgres: set access of device %d: %w", id, err)
	}
	tag, err := s.exec(ctx, `UPDATE devices SET access = $1 WHERE id = $2`, string(access), id)
	if err != nil {
		return fmt.Errorf("postgres: set access of device %d: %w", id, err)
	}
	return affected(tag, "device %d", id)
}

// SetDeviceWipe sets only the Wipe state of the device with the given id to
// to: unconditionally when from is empty, otherwise only if the current
// state is one of from. One statement both updates and checks that the
// device exists, so the compare-and-set is atomic. It reports whether the
// update was applied. store.ErrNotFound if the device does not exist.
func (s *Store) SetDeviceWipe(ctx context.Context, id int64, to store.WipeState, from ...store.WipeState) (bool, error) {
	if err := checkWipe(to); err != nil {
		return false, fmt.Errorf("postgres: set wipe of device %d: %w", id, err)
	}
	cond := ``
	args := []any{string(to), id}
	if len(from) > 0 {
		states := make([]string, len(from))
		for i, f := range from {
			if err := checkWipe(f); err != nil {
				return false, fmt.Errorf("postgres: set wipe of device %d: from: %w", id, err)
			}
			states[i] = string(f)
		}
		cond = ` AND wipe = ANY($3::text[])`
		args = append(args, states)
	}
	// The data-modifying CTE and the outer query share one snapshot, so the
	// existence check sees the row as it was before the update.
	var changed, exists bool
	err := s.withConn(ctx, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, `
			WITH upd AS (UPDATE devices SET wipe = $1 WHERE id = $2`+cond+` RETURNING 1)
			SELECT EXISTS (SELECT 1 FROM upd), EXISTS (SELECT 1 FROM devices WHERE id = $2)`,
			args...).Scan(&changed, &exists)
	})
	if err != nil {
		return false, fmt.Errorf("postgres: set wipe of device %d: %w", id, err)
	}
	if !changed && !exists {
		return false, fmt.Errorf("postgres: device %d: %w", id, store.ErrNotFound)
	}
	return changed, nil
}

// DeleteDevice removes a device; foreign keys cascade to its sync state.
// store.ErrNotFound if absent.
func (s *Store) DeleteDevice(ctx context.Context, id int64) error {
	tag, err := s.exec(ctx, `DELETE FROM devices WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("postgres: delete device %d: %w", id, err)
	}
	return affected(tag, "device %d", id)
}

// PutSyncState stores st as the newest state of its collection (stamping
// CreatedAt) and deletes all but the newest two states of that collection,
// in one transaction. Puts for one device are serialized by a lock on its
// row. store.ErrNotFound if the device does not exist.
func (s *Store) PutSyncState(ctx context.Context, st store.SyncState) error {
	data := st.Data
	if data == nil {
		data = []byte{}
	}
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM devices WHERE id = $1 FOR NO KEY UPDATE`, st.DeviceID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("device %d: %w", st.DeviceID, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		var seq int64
		if err := tx.QueryRow(ctx,
			`SELECT coalesce(max(seq), 0) + 1 FROM sync_states WHERE device_id = $1 AND collection = $2`,
			st.DeviceID, st.Collection).Scan(&seq); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO sync_states (device_id, collection, sync_key, data, created_at, seq)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (device_id, collection, sync_key) DO UPDATE SET
				data = excluded.data, created_at = excluded.created_at, seq = excluded.seq`,
			st.DeviceID, st.Collection, st.SyncKey, data, s.stamp(), seq); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `
			DELETE FROM sync_states WHERE device_id = $1 AND collection = $2 AND seq < (
				SELECT seq FROM sync_states WHERE device_id = $1 AND collection = $2
				ORDER BY seq DESC LIMIT 1 OFFSET 1)`,
			st.DeviceID, st.Collection)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: put sync state of device %d collection %q: %w", st.DeviceID, st.Collection, err)
	}
	return nil
}

// SyncState returns the state stored under the key. store.ErrNotFound if
// absent.
func (s *Store) SyncState(ctx context.Context, deviceID int64, collection, syncKey string) (store.SyncState, error) {
	st := store.SyncState{DeviceID: deviceID, Collection: collection, SyncKey: syncKey}
	if !storableText(collection) || !storableText(syncKey) {
		// A key or collection id sent by a client that no state can have
		// (PostgreSQL would refuse the query itself).
		return st, fmt.Errorf("postgres: sync state %q of device %d collection %q: %w", syncKey, deviceID, collection, store.ErrNotFound)
	}
	err := s.withConn(ctx, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, `
			SELECT data, created_at FROM sync_states
			WHERE device_id = $1 AND collection = $2 AND sync_key = $3`,
			deviceID, collection, syncKey).Scan(&st.Data, &st.CreatedAt)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return store.SyncState{}, fmt.Errorf("postgres: sync state %q of device %d collection %q: %w",
			syncKey, deviceID, collection, store.ErrNotFound)
	}
	if err != nil {
		return store.SyncState{}, fmt.Errorf("postgres: sync state %q of device %d collection %q: %w",
			syncKey, deviceID, collection, err)
	}
	if st.Data == nil {
		st.Data = []byte{}
	}
	st.CreatedAt = st.CreatedAt.UTC()
	return st, nil
}

// LatestSyncState returns the newest state of one collection of a
// device. store.ErrNotFound if none.
func (s *Store) LatestSyncState(ctx context.Context, deviceID int64, collection string) (store.SyncState, error) {
	st := store.SyncState{DeviceID: deviceID, Collection: collection}
	if !storableText(collection) {
		return st, fmt.Errorf("postgres: latest sync state of device %d collection %q: %w", deviceID, collection, store.ErrNotFound)
	}
	err := s.withConn(ctx, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, `
			SELECT sync_key, data, created_at FROM sync_states
			WHERE device_id = $1 AND collection = $2
			ORDER BY seq DESC LIMIT 1`,
			deviceID, collection).Scan(&st.SyncKey, &st.Data, &st.CreatedAt)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return store.SyncState{}, fmt.Errorf("postgres: latest sync state of device %d collection %q: %w", deviceID, collection, store.ErrNotFound)
	}
	if err != nil {
		return store.SyncState{}, fmt.Errorf("postgres: latest sync state of device %d collection %q: %w", deviceID, collection, err)
	}
	if st.Data == nil {
		st.Data = []byte{}
	}
	return st, nil
}

// DeleteSyncStates removes every state of one collection of a device, or
// of every collection when collection is "*".
func (s *Store) DeleteSyncStates(ctx context.Context, deviceID int64, collection string) error {
	var err error
	if collection == "*" {
		_, err = s.exec(ctx, `DELETE FROM sync_states WHERE device_id = $1`, deviceID)
	} else {
		_, err = s.exec(ctx, `DELETE FROM sync_states WHERE device_id = $1 AND collection = $2`,
			deviceID, collection)
	}
	if err != nil {
		return fmt.Errorf("postgres: delete sync states of device %d collection %q: %w", deviceID, collection, err)
	}
	return nil
}

// storableText reports whether PostgreSQL can hold s as text: valid UTF-8
// without NUL. Lookups by client-sent text that is not are answered
// ErrNotFound without a query.
func storableText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}
