-- Runs keep when the server received them (`received_at`, unix seconds)
-- beside when the agent says they started (`at`, which may be long before:
-- an agent's offline queue), and the identity of the node that sent them.
-- A node's identity is the serial of the certificate its enrollment issued
-- (renewals keep it; a re-enrollment of the name starts a new one), so the
-- runs of a retired identity are kept, marked, and not shown as the new
-- one's. Rows from before this migration get the node's identity then, and
-- their start time as their receipt time. The same on both engines.

ALTER TABLE nodes ADD COLUMN identity TEXT NOT NULL DEFAULT '';
UPDATE nodes SET identity = cert_serial;

ALTER TABLE runs ADD COLUMN received_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN identity TEXT NOT NULL DEFAULT '';
UPDATE runs SET received_at = at,
    identity = COALESCE((SELECT nodes.identity FROM nodes WHERE nodes.name = runs.node), '');
