-- What every server process on this database must agree on, recorded by the
-- first one to start and checked by each later one: the CA's fingerprint
-- (`ca_fingerprint`) and the secrets key's id (`secrets_key_id`). A replica
-- started with another CA or key refuses to start instead of issuing
-- certificates no one trusts or failing to open the stored secrets.
-- The same on both engines.

CREATE TABLE cluster_settings (
    key        TEXT   NOT NULL PRIMARY KEY,
    value      TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
