-- cm-server's state on PostgreSQL. The SQLite schema in ../sqlite is the
-- same table for table and column for column; only the auto-increment ids
-- differ. Portable types only (sqlx's Any driver): TEXT and BIGINT, booleans
-- as BIGINT 0/1, times as unix seconds, JSON as TEXT.

CREATE TABLE cookbook_versions (
    name            TEXT   NOT NULL,
    version         TEXT   NOT NULL,
    description     TEXT   NOT NULL,
    depends_json    TEXT   NOT NULL,
    manifest_json   TEXT   NOT NULL,
    manifest_digest TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    pushed_by       TEXT   NOT NULL,
    PRIMARY KEY (name, version)
);

-- Roles and environments: the current revision of each.
CREATE TABLE documents (
    kind       TEXT   NOT NULL CHECK (kind IN ('role', 'environment')),
    name       TEXT   NOT NULL,
    yaml       TEXT   NOT NULL,
    revision   BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT   NOT NULL,
    PRIMARY KEY (kind, name)
);

-- Every revision ever stored, the current one included.
CREATE TABLE document_revisions (
    kind       TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    revision   BIGINT NOT NULL,
    yaml       TEXT   NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT   NOT NULL,
    PRIMARY KEY (kind, name, revision)
);

CREATE TABLE nodes (
    name            TEXT   NOT NULL PRIMARY KEY,
    environment     TEXT   NOT NULL,
    roles_json      TEXT   NOT NULL,
    attributes_json TEXT   NOT NULL,
    facts_json      TEXT   NOT NULL,
    state           TEXT   NOT NULL CHECK (state IN ('active', 'unreachable', 'retired')),
    cert_serial     TEXT   NOT NULL,
    cert_expires_at BIGINT NOT NULL,
    enrolled_at     BIGINT NOT NULL,
    last_seen       BIGINT NOT NULL,
    last_run_json   TEXT,
    plan_hash       TEXT   NOT NULL
);
CREATE INDEX nodes_by_environment ON nodes (environment);

-- Revoked certificate serials (nodes retired or renewed, admins removed).
CREATE TABLE revocations (
    serial     TEXT   NOT NULL PRIMARY KEY,
    reason     TEXT   NOT NULL,
    revoked_at BIGINT NOT NULL
);

CREATE TABLE tokens (
    id          TEXT   NOT NULL PRIMARY KEY,
    secret_hash TEXT   NOT NULL UNIQUE,
    roles_json  TEXT   NOT NULL,
    environment TEXT   NOT NULL,
    expires_at  BIGINT NOT NULL,
    uses_left   BIGINT NOT NULL,
    revoked     BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    created_by  TEXT   NOT NULL
);

-- Values are encrypted by the caller; the store sees hex ciphertext only.
CREATE TABLE secrets (
    name           TEXT   NOT NULL PRIMARY KEY,
    ciphertext_hex TEXT   NOT NULL,
    roles_json     TEXT   NOT NULL,
    updated_at     BIGINT NOT NULL,
    updated_by     TEXT   NOT NULL
);

CREATE TABLE admins (
    name        TEXT   NOT NULL PRIMARY KEY,
    cert_serial TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT   NOT NULL,
    removed     BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE runs (
    id                BIGSERIAL PRIMARY KEY,
    node              TEXT   NOT NULL,
    at                BIGINT NOT NULL,
    status            TEXT   NOT NULL,
    resources_total   BIGINT NOT NULL,
    resources_changed BIGINT NOT NULL,
    resources_failed  BIGINT NOT NULL,
    duration_ms       BIGINT NOT NULL,
    cause             TEXT   NOT NULL,
    plan_hash         TEXT   NOT NULL,
    plan_age_seconds  BIGINT NOT NULL,
    report_json       TEXT   NOT NULL
);
CREATE INDEX runs_by_node ON runs (node, id);
CREATE INDEX runs_by_time ON runs (at);

CREATE TABLE audit (
    id          BIGSERIAL PRIMARY KEY,
    at          BIGINT NOT NULL,
    who         TEXT   NOT NULL,
    what        TEXT   NOT NULL,
    before_json TEXT,
    after_json  TEXT
);
CREATE INDEX audit_by_who ON audit (who, id);
