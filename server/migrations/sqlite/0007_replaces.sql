-- A member that takes a freed ordinal replaces the node that held it last
-- (docs/server.md, "The cluster view"): a Cassandra node taking a dead
-- node's place boots with that node's address. freed_ordinals keeps the
-- last holder of each ordinal a node left; memberships.replaces names it
-- for the member that took the ordinal ('' for a fresh one).

CREATE TABLE freed_ordinals (
    environment TEXT   NOT NULL,
    role        TEXT   NOT NULL,
    ordinal     BIGINT NOT NULL,
    node        TEXT   NOT NULL,
    freed_at    BIGINT NOT NULL,
    PRIMARY KEY (environment, role, ordinal)
);

ALTER TABLE memberships ADD COLUMN replaces TEXT NOT NULL DEFAULT '';
