-- A member that takes the ordinal of a gone node (expired or retired)
-- replaces it (docs/server.md, "The cluster view"): a Cassandra node taking
-- a dead node's place boots with that node's address. freed_ordinals keeps
-- the last gone holder of each ordinal; memberships.replaces names it for
-- the member that took the ordinal ('' when it replaces nobody).

CREATE TABLE freed_ordinals (
    environment TEXT   NOT NULL,
    role        TEXT   NOT NULL,
    ordinal     BIGINT NOT NULL,
    node        TEXT   NOT NULL,
    freed_at    BIGINT NOT NULL,
    PRIMARY KEY (environment, role, ordinal)
);

ALTER TABLE memberships ADD COLUMN replaces TEXT NOT NULL DEFAULT '';
