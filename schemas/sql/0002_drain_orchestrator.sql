-- 0002: what drain-orchestrator needs beyond 0001 (issue #5).
--
-- edges: the rest of edge.status, so the orchestrator reads one table for a
-- drain's progress (nailed-up dialogs left, calls cut at a deadline, BYEs
-- sent again); sip-edge writes them with every heartbeat.
ALTER TABLE edges
    ADD COLUMN nailed_up_dialogs   integer NOT NULL DEFAULT 0,
    ADD COLUMN calls_cut           integer NOT NULL DEFAULT 0,
    ADD COLUMN byes_retransmitted  integer NOT NULL DEFAULT 0;

-- drains: enough to resume a drain where it stood after a restart or a new
-- leader (drain_fsm's state).
ALTER TABLE drains
    ADD COLUMN request_id       uuid,                 -- the drain.start that began it
    ADD COLUMN forced           boolean NOT NULL DEFAULT false,
    ADD COLUMN phase_since      timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN phase_ms         jsonb NOT NULL DEFAULT '{}'::jsonb, -- ms spent per phase
    ADD COLUMN calls_at_start   integer,
    ADD COLUMN agents_at_start  integer;

-- The agent.logout commands a drain sent, written with the command in one
-- transaction: a new leader sends none twice.
CREATE TABLE drain_agents (
    drain_id        uuid NOT NULL REFERENCES drains (drain_id),
    agent_id        text NOT NULL,
    logout_sent_at  timestamptz NOT NULL,
    logouts_sent    integer NOT NULL DEFAULT 1,
    PRIMARY KEY (drain_id, agent_id)
);
