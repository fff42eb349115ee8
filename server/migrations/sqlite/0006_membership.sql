-- The cluster view (docs/server.md, "The cluster view"): nodes gain a
-- fourth state, `expired` (silent past its environment's expire_after: out
-- of the view, its certificate still valid), and each (environment, role)
-- its members with stable ordinals, unique per role, the lowest free one
-- taken on joining. Cookbook versions record the roles of the view they
-- read (`cluster:` in metadata.yaml, JSON; empty before 0.3.0, when no
-- cookbook could declare any), read with the catalog, not from blobs. SQLite cannot change a CHECK in place: the nodes table
-- is copied into one that allows the new state.

CREATE TABLE nodes_new (
    name            TEXT   NOT NULL PRIMARY KEY,
    environment     TEXT   NOT NULL,
    roles_json      TEXT   NOT NULL,
    attributes_json TEXT   NOT NULL,
    facts_json      TEXT   NOT NULL,
    state           TEXT   NOT NULL
                    CHECK (state IN ('active', 'unreachable', 'expired', 'retired')),
    cert_serial     TEXT   NOT NULL,
    cert_expires_at BIGINT NOT NULL,
    enrolled_at     BIGINT NOT NULL,
    last_seen       BIGINT NOT NULL,
    last_run_json   TEXT,
    plan_hash       TEXT   NOT NULL,
    plan_error      TEXT   NOT NULL DEFAULT '',
    identity        TEXT   NOT NULL DEFAULT '',
    agent_version   TEXT   NOT NULL DEFAULT ''
);
INSERT INTO nodes_new (name, environment, roles_json, attributes_json, facts_json, state,
    cert_serial, cert_expires_at, enrolled_at, last_seen, last_run_json, plan_hash,
    plan_error, identity, agent_version)
SELECT name, environment, roles_json, attributes_json, facts_json, state,
    cert_serial, cert_expires_at, enrolled_at, last_seen, last_run_json, plan_hash,
    plan_error, identity, agent_version
FROM nodes;
DROP TABLE nodes;
ALTER TABLE nodes_new RENAME TO nodes;
CREATE INDEX nodes_by_environment ON nodes (environment);

CREATE TABLE memberships (
    environment TEXT   NOT NULL,
    role        TEXT   NOT NULL,
    ordinal     BIGINT NOT NULL,
    node        TEXT   NOT NULL,
    joined_at   BIGINT NOT NULL,
    PRIMARY KEY (node, role),
    UNIQUE (environment, role, ordinal)
);

ALTER TABLE cookbook_versions ADD COLUMN cluster_json TEXT NOT NULL DEFAULT '';
