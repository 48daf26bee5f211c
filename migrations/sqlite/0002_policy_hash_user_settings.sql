-- The policy a device acknowledged (Provision), and per-user settings (Oof).

ALTER TABLE devices ADD COLUMN policy_hash TEXT NOT NULL DEFAULT '';

CREATE TABLE user_settings (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key        TEXT    NOT NULL,
    value      BLOB    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
) STRICT;
