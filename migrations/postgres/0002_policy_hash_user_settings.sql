-- The policy a device acknowledged (Provision), and per-user settings (Oof).

ALTER TABLE devices ADD COLUMN policy_hash text NOT NULL DEFAULT '';

CREATE TABLE user_settings (
    user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key        text        COLLATE "C" NOT NULL,
    value      bytea       NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);
