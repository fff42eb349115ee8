-- Admin permissions (docs/server.md, "Admin permissions"): each admin has
-- a level (viewer, operator, owner) and may be limited to some
-- environments (a JSON list; [] for all). Admins made before levels
-- existed could do everything: they are owners of every environment.

ALTER TABLE admins ADD COLUMN level TEXT NOT NULL DEFAULT 'owner';
ALTER TABLE admins ADD COLUMN environments_json TEXT NOT NULL DEFAULT '[]';
