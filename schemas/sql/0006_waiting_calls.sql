-- 0006: calls waiting at a route point for a Ready agent (issue #16).
--
-- A route-point call that finds no Ready agent waits here instead of being
-- refused: the edge holding the caller's INVITE has answered 182 Queued and
-- keeps the transaction. The queue of a site is every row of that site, in
-- arrival order (queued_at), whichever edge holds it. Agents are given to
-- waiting calls in PostgreSQL, by one transaction at a time per site (an
-- advisory lock): the oldest waiting calls get the longest-idle Ready
-- agents, pair by pair, whichever edge holds them; the agent is reserved
-- (agents.call_id) and the row marked (agent_id, given_at). The edge
-- holding the call then takes its marked rows out and offers each call to
-- its agent (sip-edge, edge_db.c). So the first caller in is the first
-- served across all edges of the site, and no agent or call is taken twice.
--
-- A row lives while its call waits: it is deleted when its edge offers the
-- call (the calls row takes over), when the caller gives up (CANCEL; an
-- agent given to it is released), when it has waited SIPDRAIN_QUEUE_MAX_WAIT
-- (deadline), and when its edge starts again or has been silent for a
-- minute (the callers it held went with it). A call offered to an agent who
-- did not answer comes back with its first queued_at: ahead of every call
-- that came after it.

CREATE TABLE waiting_calls (
    edge_id      text NOT NULL,        -- the edge holding the caller's INVITE
    call_id      text NOT NULL,        -- the call's id at that edge (its SIP Call-ID)
    site         text NOT NULL REFERENCES sites (site_id),
    route_point  text NOT NULL,        -- the DN the caller dialled
    token        bigint NOT NULL,      -- the edge's own handle of the call (unique in its process)
    caller       text,
    called       text,
    queued_at    timestamptz NOT NULL, -- when the INVITE came: the order of the queue
    deadline     timestamptz NOT NULL, -- refused with 480 queue_timeout then
    offers       integer NOT NULL DEFAULT 0, -- agents it was offered to (and not answered)
    agent_id     text,                 -- the agent given to it, until its edge offers it
    given_at     timestamptz,          -- when that agent was given to it
    PRIMARY KEY (edge_id, token)
);
CREATE INDEX waiting_calls_site ON waiting_calls (site, queued_at);

-- The edge queues, takes and removes its calls (FOR UPDATE needs UPDATE);
-- the orchestrator and drainctl count them for a drain's progress.
GRANT SELECT, INSERT, UPDATE, DELETE ON waiting_calls TO sipdrain_edge;
GRANT SELECT ON waiting_calls TO sipdrain_orchestrator, sipdrain_drainctl;
