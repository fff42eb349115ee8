-- The cluster view (docs/server.md, "The cluster view"): nodes gain a
-- fourth state, `expired` (silent past its environment's expire_after: out
-- of the view, its certificate still valid), and each (environment, role)
-- its members with stable ordinals, unique per role, the lowest free one
-- taken on joining. Cookbook versions record the roles of the view they
-- read (`cluster:` in metadata.yaml, JSON; empty before 0.3.0, when no
-- cookbook could declare any), read with the catalog, not from blobs.

ALTER TABLE nodes DROP CONSTRAINT nodes_state_check;
ALTER TABLE nodes ADD CONSTRAINT nodes_state_check
    CHECK (state IN ('active', 'unreachable', 'expired', 'retired'));

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
