-- The dashboard (docs/dashboard.md): one-time login links that
-- `cmctl dashboard` prints, and the browser sessions they start. Only the
-- SHA-256 of each secret is kept, so a copy of the database opens nothing.
-- A session remembers the admin's credential, level and environments when
-- it began: a removed, replaced or re-levelled admin's sessions end.

CREATE TABLE dashboard_links (
    digest      TEXT   NOT NULL PRIMARY KEY,
    admin       TEXT   NOT NULL,
    cert_serial TEXT   NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE dashboard_sessions (
    digest            TEXT   NOT NULL PRIMARY KEY,
    admin             TEXT   NOT NULL,
    cert_serial       TEXT   NOT NULL,
    level             TEXT   NOT NULL,
    environments_json TEXT   NOT NULL,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL
);
CREATE INDEX dashboard_sessions_by_admin ON dashboard_sessions (admin);

-- A node's places, for its page and `cmctl node show`, without reading
-- every member of its environment.
CREATE INDEX memberships_by_node ON memberships (node);
