-- Why the server has no valid plan for a node (a pin no version meets, a
-- missing cookbook or role), as its last resolution found; empty when it
-- has one. `cmctl node list` shows it. The same on both engines.

ALTER TABLE nodes ADD COLUMN plan_error TEXT NOT NULL DEFAULT '';
