package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/easd/easd/store"
)

var _ store.ItemStore = (*Store)(nil)

const collectionCols = `id, user_id, class, parent_id, name, is_default, modseq, created_at`

func scanCollection(row interface{ Scan(...any) error }) (store.Collection, error) {
	var c store.Collection
	var created int64
	if err := row.Scan(&c.ID, &c.UserID, &c.Class, &c.ParentID, &c.Name, &c.Default, &c.ModSeq, &created); err != nil {
		return store.Collection{}, err
	}
	c.CreatedAt = fromDB(created)
	return c, nil
}

const itemCols = `id, collection_id, uid, data, modseq, deleted, start_at, end_at, summary, updated_at`

func scanItem(row interface{ Scan(...any) error }) (store.Item, error) {
	var it store.Item
	var start, end sql.NullInt64
	var updated int64
	err := row.Scan(&it.ID, &it.CollectionID, &it.UID, &it.Data, &it.ModSeq, &it.Deleted,
		&start, &end, &it.Summary, &updated)
	if err != nil {
		return store.Item{}, err
	}
	if start.Valid {
		it.Start = fromDB(start.Int64)
	}
	if end.Valid {
		it.End = fromDB(end.Int64)
	}
	if it.Deleted {
		it.Data = nil
	} else if it.Data == nil {
		it.Data = []byte{}
	}
	it.UpdatedAt = fromDB(updated)
	return it, nil
}

// checkClass reports an error unless class is one of the store.Class*
// constants.
func checkClass(class string) error {
	switch class {
	case store.ClassCalendar, store.ClassContacts, store.ClassTasks, store.ClassNotes:
		return nil
	}
	return fmt.Errorf("invalid class %q", class)
}

// storedTime returns t as stored: UTC with microsecond precision.
func storedTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// nullTime returns t for a nullable time column: NULL when zero.
func nullTime(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: toDB(t), Valid: true}
}

// exists runs a query of one boolean column in tx.
func exists(ctx context.Context, tx *sql.Tx, query string, args ...any) (bool, error) {
	var ok bool
	err := tx.QueryRowContext(ctx, query, args...).Scan(&ok)
	return ok, err
}

// checkParent returns store.ErrNotFound unless parent is 0 or a
// collection of the user.
func checkParent(ctx context.Context, tx *sql.Tx, userID, parent int64) error {
	if parent == 0 {
		return nil
	}
	ok, err := exists(ctx, tx, `SELECT EXISTS (SELECT 1 FROM collections WHERE id = ? AND user_id = ?)`, parent, userID)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("parent collection %d of user %d: %w", parent, userID, store.ErrNotFound)
	}
	return nil
}

// Collections lists a user's collections ordered by ID.
func (s *Store) Collections(ctx context.Context, userID int64) ([]store.Collection, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+collectionCols+` FROM collections WHERE user_id = ? ORDER BY id`, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: collections of user %d: %w", userID, err)
	}
	defer rows.Close()
	var cs []store.Collection
	for rows.Next() {
		c, err := scanCollection(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: collections of user %d: %w", userID, err)
		}
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: collections of user %d: %w", userID, err)
	}
	return cs, nil
}

// Collection returns one collection of the user. store.ErrNotFound if
// absent.
func (s *Store) Collection(ctx context.Context, userID, id int64) (store.Collection, error) {
	c, err := scanCollection(s.r.QueryRowContext(ctx,
		`SELECT `+collectionCols+` FROM collections WHERE id = ? AND user_id = ?`, id, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Collection{}, fmt.Errorf("sqlite: collection %d of user %d: %w", id, userID, store.ErrNotFound)
	}
	if err != nil {
		return store.Collection{}, fmt.Errorf("sqlite: collection %d of user %d: %w", id, userID, err)
	}
	return c, nil
}

// CreateCollection adds a collection, assigning ID and CreatedAt; ModSeq
// starts at 0. store.ErrExists if the user has one with the same parent
// and name, or already a default one of the class; store.ErrNotFound if
// the user or the parent (of the same user) does not exist.
func (s *Store) CreateCollection(ctx context.Context, c store.Collection) (store.Collection, error) {
	if err := checkClass(c.Class); err != nil {
		return store.Collection{}, fmt.Errorf("sqlite: create collection %q: %w", c.Name, err)
	}
	if c.Name == "" {
		return store.Collection{}, errors.New("sqlite: create collection: empty name")
	}
	c.ID, c.ModSeq, c.CreatedAt = 0, 0, s.stamp()
	// Writes are serialized, so the checks below see no concurrent change.
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		ok, err := exists(ctx, tx, `SELECT EXISTS (SELECT 1 FROM users WHERE id = ?)`, c.UserID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("user %d: %w", c.UserID, store.ErrNotFound)
		}
		if err := checkParent(ctx, tx, c.UserID, c.ParentID); err != nil {
			return err
		}
		if c.Default {
			ok, err := exists(ctx, tx, `SELECT EXISTS (SELECT 1 FROM collections
				WHERE user_id = ? AND class = ? AND is_default)`, c.UserID, c.Class)
			if err != nil {
				return err
			}
			if ok {
				return fmt.Errorf("default %s collection of user %d: %w", c.Class, c.UserID, store.ErrExists)
			}
		}
		err = tx.QueryRowContext(ctx, `
			INSERT INTO collections (user_id, class, parent_id, name, is_default, modseq, created_at)
			VALUES (?, ?, ?, ?, ?, 0, ?) RETURNING id`,
			c.UserID, c.Class, c.ParentID, c.Name, c.Default, toDB(c.CreatedAt)).Scan(&c.ID)
		if isUnique(err) {
			return fmt.Errorf("collection %q in parent %d of user %d: %w", c.Name, c.ParentID, c.UserID, store.ErrExists)
		}
		return err
	})
	if err != nil {
		return store.Collection{}, fmt.Errorf("sqlite: create collection %q: %w", c.Name, err)
	}
	return c, nil
}

// UpdateCollection renames or moves the collection c.ID of c.UserID: it
// sets Name and ParentID and nothing else. store.ErrNotFound if the
// collection or the new parent (of the same user) does not exist,
// store.ErrExists on a name clash. Moving a collection into itself or one
// of its descendants is an error.
func (s *Store) UpdateCollection(ctx context.Context, c store.Collection) error {
	if c.Name == "" {
		return fmt.Errorf("sqlite: update collection %d: empty name", c.ID)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		ok, err := exists(ctx, tx, `SELECT EXISTS (SELECT 1 FROM collections WHERE id = ? AND user_id = ?)`,
			c.ID, c.UserID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("collection %d of user %d: %w", c.ID, c.UserID, store.ErrNotFound)
		}
		if err := checkParent(ctx, tx, c.UserID, c.ParentID); err != nil {
			return err
		}
		if c.ParentID != 0 {
			// Walk up from the new parent; meeting c makes a cycle.
			cycle, err := exists(ctx, tx, `
				WITH RECURSIVE up (id, parent_id) AS (
					SELECT id, parent_id FROM collections WHERE id = ?
					UNION
					SELECT c.id, c.parent_id FROM collections c JOIN up ON c.id = up.parent_id
				)
				SELECT EXISTS (SELECT 1 FROM up WHERE id = ?)`, c.ParentID, c.ID)
			if err != nil {
				return err
			}
			if cycle {
				return fmt.Errorf("cannot move collection %d into itself or its descendant %d", c.ID, c.ParentID)
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE collections SET name = ?, parent_id = ? WHERE id = ?`,
			c.Name, c.ParentID, c.ID)
		if isUnique(err) {
			return fmt.Errorf("collection %q in parent %d of user %d: %w", c.Name, c.ParentID, c.UserID, store.ErrExists)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: update collection %d: %w", c.ID, err)
	}
	return nil
}

// DeleteCollection removes a collection of the user with its child
// collections, recursively, in one statement; foreign keys cascade to
// their items. store.ErrNotFound if absent.
func (s *Store) DeleteCollection(ctx context.Context, userID, id int64) error {
	res, err := s.w.ExecContext(ctx, `
		WITH RECURSIVE tree (id) AS (
			SELECT id FROM collections WHERE id = ? AND user_id = ?
			UNION
			SELECT c.id FROM collections c JOIN tree ON c.user_id = ? AND c.parent_id = tree.id
		)
		DELETE FROM collections WHERE id IN (SELECT id FROM tree)`, id, userID, userID)
	if err != nil {
		return fmt.Errorf("sqlite: delete collection %d of user %d: %w", id, userID, err)
	}
	return affected(res, "delete collection: collection %d of user %d", id, userID)
}

// nextModSeq increments the collection's modseq and returns it.
// store.ErrNotFound if the collection does not exist.
func nextModSeq(ctx context.Context, tx *sql.Tx, collectionID int64) (int64, error) {
	var seq int64
	err := tx.QueryRowContext(ctx, `UPDATE collections SET modseq = modseq + 1 WHERE id = ? RETURNING modseq`,
		collectionID).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("collection %d: %w", collectionID, store.ErrNotFound)
	}
	return seq, err
}

// PutItem stores it in it.CollectionID: an insert when it.ID is 0, else a
// replace of the live item it.ID. The item gets the collection's next
// ModSeq and UpdatedAt; Start and End are stored in UTC to the
// microsecond. It returns the stored item. store.ErrExists if another
// live item of the collection has the UID; store.ErrNotFound if the
// collection, or the item to replace, does not exist or is deleted.
func (s *Store) PutItem(ctx context.Context, it store.Item) (store.Item, error) {
	if it.UID == "" {
		return store.Item{}, fmt.Errorf("sqlite: put item in collection %d: empty uid", it.CollectionID)
	}
	if it.Data == nil {
		it.Data = []byte{}
	}
	it.Deleted = false
	it.Start, it.End, it.UpdatedAt = storedTime(it.Start), storedTime(it.End), s.stamp()
	err := s.inTx(ctx, func(tx *sql.Tx) (err error) {
		if it.ModSeq, err = nextModSeq(ctx, tx, it.CollectionID); err != nil {
			return err
		}
		if it.ID == 0 {
			err = tx.QueryRowContext(ctx, `
				INSERT INTO items (collection_id, uid, data, modseq, deleted, start_at, end_at, summary, updated_at)
				VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?) RETURNING id`,
				it.CollectionID, it.UID, it.Data, it.ModSeq, nullTime(it.Start), nullTime(it.End),
				it.Summary, toDB(it.UpdatedAt)).Scan(&it.ID)
		} else {
			var res sql.Result
			res, err = tx.ExecContext(ctx, `
				UPDATE items SET uid = ?, data = ?, modseq = ?, start_at = ?, end_at = ?,
					summary = ?, updated_at = ?
				WHERE id = ? AND collection_id = ? AND NOT deleted`,
				it.UID, it.Data, it.ModSeq, nullTime(it.Start), nullTime(it.End), it.Summary,
				toDB(it.UpdatedAt), it.ID, it.CollectionID)
			if err == nil {
				var n int64
				if n, err = res.RowsAffected(); err == nil && n == 0 {
					return fmt.Errorf("item %d in collection %d: %w", it.ID, it.CollectionID, store.ErrNotFound)
				}
			}
		}
		if isUnique(err) {
			return fmt.Errorf("item %q in collection %d: %w", it.UID, it.CollectionID, store.ErrExists)
		}
		return err
	})
	if err != nil {
		return store.Item{}, fmt.Errorf("sqlite: put item %q: %w", it.UID, err)
	}
	return it, nil
}

// DeleteItem turns the live item id into a tombstone with the
// collection's next ModSeq, dropping its Data, and returns the tombstone.
// store.ErrNotFound if the item is absent or already deleted.
func (s *Store) DeleteItem(ctx context.Context, collectionID, id int64) (store.Item, error) {
	var it store.Item
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		seq, err := nextModSeq(ctx, tx, collectionID)
		if err != nil {
			return err
		}
		it, err = scanItem(tx.QueryRowContext(ctx, `
			UPDATE items SET data = NULL, deleted = 1, modseq = ?, updated_at = ?
			WHERE id = ? AND collection_id = ? AND NOT deleted
			RETURNING `+itemCols,
			seq, toDB(s.stamp()), id, collectionID))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("item %d in collection %d: %w", id, collectionID, store.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return store.Item{}, fmt.Errorf("sqlite: delete item: %w", err)
	}
	return it, nil
}

// Item returns a live item. store.ErrNotFound if absent or deleted.
func (s *Store) Item(ctx context.Context, collectionID, id int64) (store.Item, error) {
	it, err := scanItem(s.r.QueryRowContext(ctx,
		`SELECT `+itemCols+` FROM items WHERE id = ? AND collection_id = ? AND NOT deleted`, id, collectionID))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Item{}, fmt.Errorf("sqlite: item %d in collection %d: %w", id, collectionID, store.ErrNotFound)
	}
	if err != nil {
		return store.Item{}, fmt.Errorf("sqlite: item %d in collection %d: %w", id, collectionID, err)
	}
	return it, nil
}

// ItemByUID returns the live item with that UID. store.ErrNotFound if
// none.
func (s *Store) ItemByUID(ctx context.Context, collectionID int64, uid string) (store.Item, error) {
	it, err := scanItem(s.r.QueryRowContext(ctx,
		`SELECT `+itemCols+` FROM items WHERE collection_id = ? AND uid = ? AND NOT deleted`, collectionID, uid))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Item{}, fmt.Errorf("sqlite: item %q in collection %d: %w", uid, collectionID, store.ErrNotFound)
	}
	if err != nil {
		return store.Item{}, fmt.Errorf("sqlite: item %q in collection %d: %w", uid, collectionID, err)
	}
	return it, nil
}

// ItemChanges returns the items and tombstones of a collection with
// ModSeq > since, ascending by ModSeq, at most limit (0: no limit);
// tombstones have no Data. A negative limit is an error.
func (s *Store) ItemChanges(ctx context.Context, collectionID, since int64, limit int) ([]store.Item, error) {
	if limit < 0 {
		return nil, fmt.Errorf("sqlite: changes of collection %d: negative limit %d", collectionID, limit)
	}
	lim := int64(limit)
	if limit == 0 {
		lim = -1 // SQLite: no limit
	}
	rows, err := s.r.QueryContext(ctx, `
		SELECT `+itemCols+` FROM items WHERE collection_id = ? AND modseq > ?
		ORDER BY modseq LIMIT ?`, collectionID, since, lim)
	if err != nil {
		return nil, fmt.Errorf("sqlite: changes of collection %d since %d: %w", collectionID, since, err)
	}
	defer rows.Close()
	var its []store.Item
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: changes of collection %d since %d: %w", collectionID, since, err)
		}
		its = append(its, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: changes of collection %d since %d: %w", collectionID, since, err)
	}
	return its, nil
}
