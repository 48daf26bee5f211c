-- easd initial schema, SQLite dialect.
-- Timestamps are INTEGER unix microseconds, UTC.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL DEFAULT '',
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE devices (
    id               INTEGER PRIMARY KEY,
    user_id          INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id        TEXT    NOT NULL,
    device_type      TEXT    NOT NULL DEFAULT '',
    user_agent       TEXT    NOT NULL DEFAULT '',
    model            TEXT    NOT NULL DEFAULT '',
    imei             TEXT    NOT NULL DEFAULT '',
    friendly_name    TEXT    NOT NULL DEFAULT '',
    os               TEXT    NOT NULL DEFAULT '',
    os_language      TEXT    NOT NULL DEFAULT '',
    phone_number     TEXT    NOT NULL DEFAULT '',
    mobile_operator  TEXT    NOT NULL DEFAULT '',
    protocol_version TEXT    NOT NULL DEFAULT '',
    access           TEXT    NOT NULL DEFAULT 'allowed'
                     CHECK (access IN ('allowed', 'blocked', 'quarantined')),
    policy_key       INTEGER NOT NULL DEFAULT 0
                     CHECK (policy_key BETWEEN 0 AND 4294967295),
    wipe             TEXT    NOT NULL DEFAULT ''
                     CHECK (wipe IN ('', 'pending', 'account', 'acknowledged')),
    first_seen       INTEGER NOT NULL,
    last_seen        INTEGER NOT NULL,
    UNIQUE (user_id, device_id)
) STRICT;

CREATE TABLE sync_states (
    device_id  INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    collection TEXT    NOT NULL,
    sync_key   TEXT    NOT NULL,
    data       BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    PRIMARY KEY (device_id, collection, sync_key)
) STRICT;

CREATE INDEX sync_states_seq ON sync_states (device_id, collection, seq);
