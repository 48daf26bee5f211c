-- Store-side items (calendar, contacts, tasks, notes): a user's collections
-- and their items. parent_id 0 is the top level; children are removed with
-- their parent by the store (DeleteCollection), not by a foreign key.
-- A collection's modseq counts the writes to its items: PutItem and
-- DeleteItem increment it and give the item the new value, in one
-- transaction. AUTOINCREMENT keeps ids of deleted collections and items
-- from being reused, as PostgreSQL identities are not.

CREATE TABLE collections (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    class      TEXT    NOT NULL
               CHECK (class IN ('Calendar', 'Contacts', 'Tasks', 'Notes')),
    parent_id  INTEGER NOT NULL DEFAULT 0,
    name       TEXT    NOT NULL,
    is_default INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
    modseq     INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    UNIQUE (user_id, parent_id, name)
) STRICT;

-- At most one default collection per user and class.
CREATE UNIQUE INDEX collections_default ON collections (user_id, class) WHERE is_default;

-- A tombstone (deleted) has no data; start_at and end_at are NULL when unset.
CREATE TABLE items (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    uid           TEXT    NOT NULL,
    data          BLOB,
    modseq        INTEGER NOT NULL,
    deleted       INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    start_at      INTEGER,
    end_at        INTEGER,
    summary       TEXT    NOT NULL DEFAULT '',
    updated_at    INTEGER NOT NULL,
    CHECK (deleted = (data IS NULL))
) STRICT;

-- A UID is unique among the live items of a collection; tombstones keep
-- theirs, so a deleted item's UID may be used again.
CREATE UNIQUE INDEX items_uid ON items (collection_id, uid) WHERE NOT deleted;

-- Changes since a modseq; every write takes a new modseq, so it is unique.
CREATE UNIQUE INDEX items_modseq ON items (collection_id, modseq);
