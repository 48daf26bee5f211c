-- The audit log of administrative actions, and per-user app passwords.
--
-- Audit entries name users and devices by name (not by id, no foreign
-- key): they outlive what they describe, so a deleted user's wipe stays
-- on record. App passwords go with their user (ON DELETE CASCADE).
-- AUTOINCREMENT keeps the id of a revoked app password from being given
-- to a new one ('easd user app-password revoke USER ID' names it).

CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        INTEGER NOT NULL,
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    user_name TEXT    NOT NULL DEFAULT '',
    device_id TEXT    NOT NULL DEFAULT '',
    detail    TEXT    NOT NULL DEFAULT ''
) STRICT;

-- Newest first, overall and per user.
CREATE INDEX audit_log_at ON audit_log (at, id);
CREATE INDEX audit_log_user ON audit_log (user_name, at, id);

-- hash is a digest of the password (see store.AppPassword), never the
-- password; last_used is NULL until first used.
CREATE TABLE app_passwords (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    label      TEXT    NOT NULL DEFAULT '',
    device_id  TEXT    NOT NULL DEFAULT '',
    hash       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    last_used  INTEGER
) STRICT;

CREATE INDEX app_passwords_user ON app_passwords (user_id, id);
