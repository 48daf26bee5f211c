package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/easd/easd/store"
)

// AddAudit implements store.AdminStore.
func (s *Store) AddAudit(ctx context.Context, e store.AuditEntry) (store.AuditEntry, error) {
	if e.Actor == "" || e.Action == "" {
		return store.AuditEntry{}, errors.New("sqlite: audit entry without actor or action")
	}
	if e.Time.IsZero() {
		e.Time = s.stamp()
	}
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	res, err := s.w.ExecContext(ctx, `
		INSERT INTO audit_log (at, actor, action, user_name, device_id, detail) VALUES (?, ?, ?, ?, ?, ?)`,
		toDB(e.Time), e.Actor, e.Action, e.User, e.Device, e.Detail)
	if err != nil {
		return store.AuditEntry{}, fmt.Errorf("sqlite: add audit %q: %w", e.Action, err)
	}
	if e.ID, err = res.LastInsertId(); err != nil {
		return store.AuditEntry{}, fmt.Errorf("sqlite: add audit %q: %w", e.Action, err)
	}
	return e, nil
}

// Audit implements store.AdminStore: entries newest first.
func (s *Store) Audit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	var where []string
	var args []any
	if f.User != "" {
		where, args = append(where, "user_name = ?"), append(args, f.User)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "at >= ?"), append(args, toDB(f.Since))
	}
	q := `SELECT id, at, actor, action, user_name, device_id, detail FROM audit_log`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY at DESC, id DESC"
	if f.Limit > 0 {
		q, args = q+" LIMIT ?", append(args, f.Limit)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit: %w", err)
	}
	defer rows.Close()
	var es []store.AuditEntry
	for rows.Next() {
		var e store.AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.User, &e.Device, &e.Detail); err != nil {
			return nil, fmt.Errorf("sqlite: audit: %w", err)
		}
		e.Time = fromDB(at)
		es = append(es, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: audit: %w", err)
	}
	return es, nil
}

// AddAppPassword implements store.AdminStore.
func (s *Store) AddAppPassword(ctx context.Context, p store.AppPassword) (store.AppPassword, error) {
	if p.Hash == "" {
		return store.AppPassword{}, errors.New("sqlite: app password without a hash")
	}
	p.Created, p.LastUsed = s.stamp(), time.Time{}
	res, err := s.w.ExecContext(ctx, `
		INSERT INTO app_passwords (user_id, label, device_id, hash, created_at) VALUES (?, ?, ?, ?, ?)`,
		p.UserID, p.Label, p.DeviceID, p.Hash, toDB(p.Created))
	if isForeignKey(err) {
		return store.AppPassword{}, fmt.Errorf("sqlite: add app password: user %d: %w", p.UserID, store.ErrNotFound)
	}
	if err != nil {
		return store.AppPassword{}, fmt.Errorf("sqlite: add app password of user %d: %w", p.UserID, err)
	}
	if p.ID, err = res.LastInsertId(); err != nil {
		return store.AppPassword{}, fmt.Errorf("sqlite: add app password of user %d: %w", p.UserID, err)
	}
	return p, nil
}

// AppPasswords implements store.AdminStore.
func (s *Store) AppPasswords(ctx context.Context, userID int64) ([]store.AppPassword, error) {
	rows, err := s.r.QueryContext(ctx, `
		SELECT id, user_id, label, device_id, hash, created_at, last_used
		FROM app_passwords WHERE user_id = ? ORDER BY id`, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: app passwords of user %d: %w", userID, err)
	}
	defer rows.Close()
	var ps []store.AppPassword
	for rows.Next() {
		var p store.AppPassword
		var created int64
		var used sql.NullInt64
		if err := rows.Scan(&p.ID, &p.UserID, &p.Label, &p.DeviceID, &p.Hash, &created, &used); err != nil {
			return nil, fmt.Errorf("sqlite: app passwords of user %d: %w", userID, err)
		}
		p.Created = fromDB(created)
		if used.Valid {
			p.LastUsed = fromDB(used.Int64)
		}
		ps = append(ps, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: app passwords of user %d: %w", userID, err)
	}
	return ps, nil
}

// DeleteAppPassword implements store.AdminStore.
func (s *Store) DeleteAppPassword(ctx context.Context, userID, id int64) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM app_passwords WHERE id = ? AND user_id = ?`, id, userID)
	if err != nil {
		return fmt.Errorf("sqlite: delete app password %d of user %d: %w", id, userID, err)
	}
	return affected(res, "app password %d of user %d", id, userID)
}

// TouchAppPassword implements store.AdminStore.
func (s *Store) TouchAppPassword(ctx context.Context, id int64, at time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE app_passwords SET last_used = ? WHERE id = ?`, toDB(at), id)
	if err != nil {
		return fmt.Errorf("sqlite: touch app password %d: %w", id, err)
	}
	return affected(res, "app password %d", id)
}
