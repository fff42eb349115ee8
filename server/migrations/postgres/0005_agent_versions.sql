-- The lowest cm-agent version that compiles each cookbook version, recorded
-- when it is pushed (cm_model::features); empty for a version pushed before
-- the server recorded it, whose YAML agents read as it was read then
-- (docs/cookbooks.md, "Plain values YAML reads two ways"). And the cm-agent
-- version each node last reported in GetPlan (empty: not reported yet), so
-- that a plan needing a newer agent is a plan error the node list shows.
-- The same on both engines.

ALTER TABLE cookbook_versions ADD COLUMN min_agent TEXT NOT NULL DEFAULT '';
ALTER TABLE nodes ADD COLUMN agent_version TEXT NOT NULL DEFAULT '';
