package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/easd/easd/store"
	"github.com/jackc/pgx/v5"
)

// AddAudit implements store.AdminStore.
func (s *Store) AddAudit(ctx context.Context, e store.AuditEntry) (store.AuditEntry, error) {
	if e.Actor == "" || e.Action == "" {
		return store.AuditEntry{}, errors.New("postgres: audit entry without actor or action")
	}
	if e.Time.IsZero() {
		e.Time = s.stamp()
	}
	// PostgreSQL rounds to the microsecond; truncate as the SQLite store does.
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	err := s.withConn(ctx, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, `
			INSERT INTO audit_log (at, actor, action, user_name, device_id, detail)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			e.Time, e.Actor, e.Action, e.User, e.Device, e.Detail).Scan(&e.ID)
	})
	if err != nil {
		return store.AuditEntry{}, fmt.Errorf("postgres: add audit %q: %w", e.Action, err)
	}
	return e, nil
}

// Audit implements store.AdminStore: entries newest first.
func (s *Store) Audit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.User != "" {
		where = append(where, "user_name = "+arg(f.User))
	}
	if !f.Since.IsZero() {
		where = append(where, "at >= "+arg(f.Since.UTC().Truncate(time.Microsecond)))
	}
	q := `SELECT id, at, actor, action, user_name, device_id, detail FROM audit_log`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY at DESC, id DESC"
	if f.Limit > 0 {
		q += " LIMIT " + arg(f.Limit)
	}
	var es []store.AuditEntry
	err := s.withConn(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		es, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.AuditEntry, error) {
			var e store.AuditEntry
			err := r.Scan(&e.ID, &e.Time, &e.Actor, &e.Action, &e.User, &e.Device, &e.Detail)
			e.Time = e.Time.UTC()
			return e, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: audit: %w", err)
	}
	return es, nil
}

// AddAppPassword implements store.AdminStore.
func (s *Store) AddAppPassword(ctx context.Context, p store.AppPassword) (store.AppPassword, error) {
	if p.Hash == "" {
		return store.AppPassword{}, errors.New("postgres: app password without a hash")
	}
	p.Created, p.LastUsed = s.stamp(), time.Time{}
	err := s.withConn(ctx, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, `
			INSERT INTO app_passwords (user_id, label, device_id, hash, created_at)
			VALUES ($1, $2, $3, $4, $5) RETURNING id`,
			p.UserID, p.Label, p.DeviceID, p.Hash, p.Created).Scan(&p.ID)
	})
	if pgCode(err) == foreignKeyViolation {
		return store.AppPassword{}, fmt.Errorf("postgres: add app password: user %d: %w", p.UserID, store.ErrNotFound)
	}
	if err != nil {
		return store.AppPassword{}, fmt.Errorf("postgres: add app password of user %d: %w", p.UserID, err)
	}
	return p, nil
}

// AppPasswords implements store.AdminStore.
func (s *Store) AppPasswords(ctx context.Context, userID int64) ([]store.AppPassword, error) {
	var ps []store.AppPassword
	err := s.withConn(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, `
			SELECT id, user_id, label, device_id, hash, created_at, last_used
			FROM app_passwords WHERE user_id = $1 ORDER BY id`, userID)
		if err != nil {
			return err
		}
		ps, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.AppPassword, error) {
			var p store.AppPassword
			var used *time.Time
			err := r.Scan(&p.ID, &p.UserID, &p.Label, &p.DeviceID, &p.Hash, &p.Created, &used)
			p.Created = p.Created.UTC()
			if used != nil {
				p.LastUsed = used.UTC()
			}
			return p, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: app passwords of user %d: %w", userID, err)
	}
	return ps, nil
}

// DeleteAppPassword implements store.AdminStore.
func (s *Store) DeleteAppPassword(ctx context.Context, userID, id int64) error {
	tag, err := s.exec(ctx, `DELETE FROM app_passwords WHERE id = $1 AND user_id = $2`, id, userID)
	if err != nil {
		return fmt.Errorf("postgres: delete app password %d of user %d: %w", id, userID, err)
	}
	return affected(tag, "app password %d of user %d", id, userID)
}

// TouchAppPassword implements store.AdminStore.
func (s *Store) TouchAppPassword(ctx context.Context, id int64, at time.Time) error {
	tag, err := s.exec(ctx, `UPDATE app_passwords SET last_used = $1 WHERE id = $2`,
		at.UTC().Truncate(time.Microsecond), id)
	if err != nil {
		return fmt.Errorf("postgres: touch app password %d: %w", id, err)
	}
	return affected(tag, "app password %d", id)
}
