package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/easd/easd/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

var _ store.ItemStore = (*Store)(nil)

// Names of the unique constraints of migration 0003, told apart in errors.
const (
	collectionNameKey    = "collections_name"
	collectionDefaultKey = "collections_default"
)

const collectionCols = `id, user_id, class, parent_id, name, is_default, modseq, created_at`

func scanCollection(row pgx.Row) (store.Collection, error) {
	var c store.Collection
	if err := row.Scan(&c.ID, &c.UserID, &c.Class, &c.ParentID, &c.Name, &c.Default, &c.ModSeq, &c.CreatedAt); err != nil {
		return store.Collection{}, err
	}
	c.CreatedAt = c.CreatedAt.UTC()
	return c, nil
}

const itemCols = `id, collection_id, uid, data, modseq, deleted, start_at, end_at, summary, updated_at`

func scanItem(row pgx.Row) (store.Item, error) {
	var it store.Item
	var start, end *time.Time
	err := row.Scan(&it.ID, &it.CollectionID, &it.UID, &it.Data, &it.ModSeq, &it.Deleted,
		&start, &end, &it.Summary, &it.UpdatedAt)
	if err != nil {
		return store.Item{}, err
	}
	if start != nil {
		it.Start = start.UTC()
	}
	if end != nil {
		it.End = end.UTC()
	}
	if it.Deleted {
		it.Data = nil
	} else if it.Data == nil {
		it.Data = []byte{}
	}
	it.UpdatedAt = it.UpdatedAt.UTC()
	return it, nil
}

func collectItems(rows pgx.Rows) ([]store.Item, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Item, error) { return scanItem(r) })
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

// nullTime returns t for a nullable timestamptz column: NULL when zero.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// lockUser locks the row of the user for the rest of tx, so that the
// collection tree of one user changes in one transaction at a time: the
// parent checks, the cycle check and the recursive delete then see no
// concurrent change. It does not block the foreign key checks of other
// tables. store.ErrNotFound if the user does not exist.
func lockUser(ctx context.Context, tx pgx.Tx, userID int64) error {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE`, userID).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("user %d: %w", userID, store.ErrNotFound)
	}
	return err
}

// checkParent returns store.ErrNotFound unless parent is 0 or a
// collection of the user.
func checkParent(ctx context.Context, tx pgx.Tx, userID, parent int64) error {
	if parent == 0 {
		return nil
	}
	var ok bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM collections WHERE id = $1 AND user_id = $2)`,
		parent, userID).Scan(&ok)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("parent collection %d of user %d: %w", parent, userID, store.ErrNotFound)
	}
	return nil
}

// pgConstraint returns the name of the constraint that err violated, or "".
func pgConstraint(err error) string {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.ConstraintName
	}
	return ""
}

// collectionExists maps a unique violation of CreateCollection or
// UpdateCollection to store.ErrExists, naming the clash; other errors are
// returned as they are.
func collectionExists(err error, c store.Collection) error {
	if pgCode(err) != uniqueViolation {
		return err
	}
	switch pgConstraint(err) {
	case collectionDefaultKey:
		return fmt.Errorf("default %s collection of user %d: %w", c.Class, c.UserID, store.ErrExists)
	case collectionNameKey:
		return fmt.Errorf("collection %q in parent %d of user %d: %w", c.Name, c.ParentID, c.UserID, store.ErrExists)
	}
	return fmt.Errorf("collection %q of user %d: %w", c.Name, c.UserID, store.ErrExists)
}

// Collections lists a user's collections ordered by ID.
func (s *Store) Collections(ctx context.Context, userID int64) ([]store.Collection, error) {
	var cs []store.Collection
	err := s.withConn(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, `SELECT `+collectionCols+` FROM collections WHERE user_id = $1 ORDER BY id`, userID)
		if err != nil {
			return err
		}
		cs, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Collection, error) { return scanCollection(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: collections of user %d: %w", userID, err)
	}
	return cs, nil
}

// Collection returns one collection of the user. store.ErrNotFound if
// absent.
func (s *Store) Collection(ctx context.Context, userID, id int64) (store.Collection, error) {
	var col store.Collection
	err := s.withConn(ctx, func(c *pgx.Conn) (err error) {
		col, err = scanCollection(c.QueryRow(ctx,
			`SELECT `+collectionCols+` FROM collections WHERE id = $1 AND user_id = $2`, id, userID))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Collection{}, fmt.Errorf("postgres: collection %d of user %d: %w", id, userID, store.ErrNotFound)
	}
	if err != nil {
		return store.Collection{}, fmt.Errorf("postgres: collection %d of user %d: %w", id, userID, err)
	}
	return col, nil
}

// CreateCollection adds a collection, assigning ID and CreatedAt; ModSeq
// starts at 0. store.ErrExists if the user has one with the same parent
// and name, or already a default one of the class; store.ErrNotFound if
// the user or the parent (of the same user) does not exist.
func (s *Store) CreateCollection(ctx context.Context, c store.Collection) (store.Collection, error) {
	if err := checkClass(c.Class); err != nil {
		return store.Collection{}, fmt.Errorf("postgres: create collection %q: %w", c.Name, err)
	}
	if c.Name == "" {
		return store.Collection{}, errors.New("postgres: create collection: empty name")
	}
	c.ID, c.ModSeq, c.CreatedAt = 0, 0, s.stamp()
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		if err := lockUser(ctx, tx, c.UserID); err != nil {
			return err
		}
		if err := checkParent(ctx, tx, c.UserID, c.ParentID); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `
			INSERT INTO collections (user_id, class, parent_id, name, is_default, modseq, created_at)
			VALUES ($1, $2, $3, $4, $5, 0, $6) RETURNING id`,
			c.UserID, c.Class, c.ParentID, c.Name, c.Default, c.CreatedAt).Scan(&c.ID)
	})
	if err := collectionExists(err, c); err != nil {
		return store.Collection{}, fmt.Errorf("postgres: create collection %q: %w", c.Name, err)
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
		return fmt.Errorf("postgres: update collection %d: empty name", c.ID)
	}
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		if err := lockUser(ctx, tx, c.UserID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("collection %d of user %d: %w", c.ID, c.UserID, store.ErrNotFound)
			}
			return err
		}
		err := tx.QueryRow(ctx, `SELECT class FROM collections WHERE id = $1 AND user_id = $2`,
			c.ID, c.UserID).Scan(&c.Class)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("collection %d of user %d: %w", c.ID, c.UserID, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if err := checkParent(ctx, tx, c.UserID, c.ParentID); err != nil {
			return err
		}
		if c.ParentID != 0 {
			// Walk up from the new parent; meeting c makes a cycle.
			var cycle bool
			err := tx.QueryRow(ctx, `
				WITH RECURSIVE up (id, parent_id) AS (
					SELECT id, parent_id FROM collections WHERE id = $1
					UNION
					SELECT c.id, c.parent_id FROM collections c JOIN up ON c.id = up.parent_id
				)
				SELECT EXISTS (SELECT 1 FROM up WHERE id = $2)`, c.ParentID, c.ID).Scan(&cycle)
			if err != nil {
				return err
			}
			if cycle {
				return fmt.Errorf("cannot move collection %d into itself or its descendant %d", c.ID, c.ParentID)
			}
		}
		_, err = tx.Exec(ctx, `UPDATE collections SET name = $1, parent_id = $2 WHERE id = $3`,
			c.Name, c.ParentID, c.ID)
		return err
	})
	if err := collectionExists(err, c); err != nil {
		return fmt.Errorf("postgres: update collection %d: %w", c.ID, err)
	}
	return nil
}

// DeleteCollection removes a collection of the user with its child
// collections, recursively; foreign keys cascade to their items.
// store.ErrNotFound if absent.
func (s *Store) DeleteCollection(ctx context.Context, userID, id int64) error {
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		if err := lockUser(ctx, tx, userID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("collection %d of user %d: %w", id, userID, store.ErrNotFound)
			}
			return err
		}
		tag, err := tx.Exec(ctx, `
			WITH RECURSIVE tree (id) AS (
				SELECT id FROM collections WHERE id = $1 AND user_id = $2
				UNION
				SELECT c.id FROM collections c JOIN tree ON c.user_id = $2 AND c.parent_id = tree.id
			)
			DELETE FROM collections WHERE id IN (SELECT id FROM tree)`, id, userID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("collection %d of user %d: %w", id, userID, store.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: delete collection: %w", err)
	}
	return nil
}

// nextModSeq increments the collection's modseq and returns it. The row
// stays locked until tx ends, so writers of one collection serialize and
// commit in ModSeq order. store.ErrNotFound if the collection does not
// exist.
func nextModSeq(ctx context.Context, tx pgx.Tx, collectionID int64) (int64, error) {
	var seq int64
	err := tx.QueryRow(ctx, `UPDATE collections SET modseq = modseq + 1 WHERE id = $1 RETURNING modseq`,
		collectionID).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
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
		return store.Item{}, fmt.Errorf("postgres: put item in collection %d: empty uid", it.CollectionID)
	}
	if it.Data == nil {
		it.Data = []byte{}
	}
	it.Deleted = false
	it.Start, it.End, it.UpdatedAt = storedTime(it.Start), storedTime(it.End), s.stamp()
	err := s.withTx(ctx, func(tx pgx.Tx) (err error) {
		if it.ModSeq, err = nextModSeq(ctx, tx, it.CollectionID); err != nil {
			return err
		}
		if it.ID == 0 {
			return tx.QueryRow(ctx, `
				INSERT INTO items (collection_id, uid, data, modseq, deleted, start_at, end_at, summary, updated_at)
				VALUES ($1, $2, $3, $4, false, $5, $6, $7, $8) RETURNING id`,
				it.CollectionID, it.UID, it.Data, it.ModSeq, nullTime(it.Start), nullTime(it.End),
				it.Summary, it.UpdatedAt).Scan(&it.ID)
		}
		tag, err := tx.Exec(ctx, `
			UPDATE items SET uid = $1, data = $2, modseq = $3, start_at = $4, end_at = $5,
				summary = $6, updated_at = $7
			WHERE id = $8 AND collection_id = $9 AND NOT deleted`,
			it.UID, it.Data, it.ModSeq, nullTime(it.Start), nullTime(it.End), it.Summary, it.UpdatedAt,
			it.ID, it.CollectionID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("item %d in collection %d: %w", it.ID, it.CollectionID, store.ErrNotFound)
		}
		return nil
	})
	if pgCode(err) == uniqueViolation {
		return store.Item{}, fmt.Errorf("postgres: item %q in collection %d: %w", it.UID, it.CollectionID, store.ErrExists)
	}
	if err != nil {
		return store.Item{}, fmt.Errorf("postgres: put item %q: %w", it.UID, err)
	}
	return it, nil
}

// DeleteItem turns the live item id into a tombstone with the
// collection's next ModSeq, dropping its Data, and returns the tombstone.
// store.ErrNotFound if the item is absent or already deleted.
func (s *Store) DeleteItem(ctx context.Context, collectionID, id int64) (store.Item, error) {
	var it store.Item
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		seq, err := nextModSeq(ctx, tx, collectionID)
		if err != nil {
			return err
		}
		it, err = scanItem(tx.QueryRow(ctx, `
			UPDATE items SET data = NULL, deleted = true, modseq = $1, updated_at = $2
			WHERE id = $3 AND collection_id = $4 AND NOT deleted
			RETURNING `+itemCols,
			seq, s.stamp(), id, collectionID))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("item %d in collection %d: %w", id, collectionID, store.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return store.Item{}, fmt.Errorf("postgres: delete item: %w", err)
	}
	return it, nil
}

// Item returns a live item. store.ErrNotFound if absent or deleted.
func (s *Store) Item(ctx context.Context, collectionID, id int64) (store.Item, error) {
	var it store.Item
	err := s.withConn(ctx, func(c *pgx.Conn) (err error) {
		it, err = scanItem(c.QueryRow(ctx,
			`SELECT `+itemCols+` FROM items WHERE id = $1 AND collection_id = $2 AND NOT deleted`,
			id, collectionID))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Item{}, fmt.Errorf("postgres: item %d in collection %d: %w", id, collectionID, store.ErrNotFound)
	}
	if err != nil {
		return store.Item{}, fmt.Errorf("postgres: item %d in collection %d: %w", id, collectionID, err)
	}
	return it, nil
}

// ItemByUID returns the live item with that UID. store.ErrNotFound if
// none.
func (s *Store) ItemByUID(ctx context.Context, collectionID int64, uid string) (store.Item, error) {
	var it store.Item
	err := s.withConn(ctx, func(c *pgx.Conn) (err error) {
		it, err = scanItem(c.QueryRow(ctx,
			`SELECT `+itemCols+` FROM items WHERE collection_id = $1 AND uid = $2 AND NOT deleted`,
			collectionID, uid))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Item{}, fmt.Errorf("postgres: item %q in collection %d: %w", uid, collectionID, store.ErrNotFound)
	}
	if err != nil {
		return store.Item{}, fmt.Errorf("postgres: item %q in collection %d: %w", uid, collectionID, err)
	}
	return it, nil
}

// ItemChanges returns the items and tombstones of a collection with
// ModSeq > since, ascending by ModSeq, at most limit (0: no limit);
// tombstones have no Data. A negative limit is an error.
func (s *Store) ItemChanges(ctx context.Context, collectionID, since int64, limit int) ([]store.Item, error) {
	if limit < 0 {
		return nil, fmt.Errorf("postgres: changes of collection %d: negative limit %d", collectionID, limit)
	}
	var lim *int // NULL: no limit
	if limit > 0 {
		lim = &limit
	}
	var its []store.Item
	err := s.withConn(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, `
			SELECT `+itemCols+` FROM items WHERE collection_id = $1 AND modseq > $2
			ORDER BY modseq LIMIT $3`, collectionID, since, lim)
		if err != nil {
			return err
		}
		its, err = collectItems(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: changes of collection %d since %d: %w", collectionID, since, err)
	}
	return its, nil
}
