-- 0003: drained stays drained (issue #13).
--
-- A drain holds its target from the moment it starts: sites.drained_by for a
-- site drain, edges.drained_by for a drain of one edge. The hold outlasts the
-- drain and every restart: an edge that starts while its site, or itself, is
-- held comes up refusing (state drained, edges.held) and stays so until the
-- operator resumes the target (drain.resume, `drainctl resume`). A cancelled
-- drain drops its hold. Written by drain-orchestrator; read by sip-edge at
-- start-up.
ALTER TABLE sites
    ADD COLUMN drained_by     uuid REFERENCES drains (drain_id),
    ADD COLUMN drained_since  timestamptz;

ALTER TABLE edges
    ADD COLUMN drained_by     uuid REFERENCES drains (drain_id),
    ADD COLUMN drained_since  timestamptz,
    -- the edge started under a hold and refuses until resumed (edge.status.held)
    ADD COLUMN held           boolean NOT NULL DEFAULT false;
