-- 0005: one PostgreSQL role per program, with only what it needs (issue #15).
--
-- The roles are groups (NOLOGIN): a deployment logs each program in as the
-- role itself (ALTER ROLE sipdrain_edge LOGIN PASSWORD ...) or as a member
-- of it (CREATE ROLE edge_site1 LOGIN PASSWORD ... IN ROLE sipdrain_edge).
-- Roles belong to the whole PostgreSQL cluster; the grants to this
-- database. Creating them needs CREATEROLE: the migration runner is the
-- schema's owner (it must be, for later ALTER TABLEs), and where it lacks
-- CREATEROLE a DBA creates the five roles first and this skips them.
--
-- Table-level grants, from every statement of each program (reads, writes,
-- ON CONFLICT, FOR UPDATE, RETURNING; the outbox's bigserial). What they do
-- not close, and the column-level variant: README, Security.
--
--   table            sip-edge  agent-state  orchestrator  drainctl  passwd
--   agents           S U       S I U        S U           S         -
--   calls            S I U     -            -             -         -
--   drain_agents     -         -            S I U         -         -
--   drains           S         S            S I U         S         -
--   edges            S I U     S            S U           S         -
--   inbox            -         S I          S I           -         -
--   outbox (+ seq)   S I U D   S I U D      S I U D       -         -
--   registrations    S I U D   S            -             -         -
--   sip_credentials  S         -            -             -         S I U D
--   sites            S         S            S U           -         -
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['sipdrain_edge', 'sipdrain_agent_state', 'sipdrain_orchestrator',
                             'sipdrain_drainctl', 'sipdrain_passwd']
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL; -- another database's migration made it just now
            END;
        END IF;
    END LOOP;
END
$$;

GRANT SELECT, UPDATE ON agents TO sipdrain_edge;
GRANT SELECT, INSERT, UPDATE ON calls, edges TO sipdrain_edge;
GRANT SELECT ON drains, sites, sip_credentials TO sipdrain_edge;
GRANT SELECT, INSERT, UPDATE, DELETE ON registrations, outbox TO sipdrain_edge;

GRANT SELECT, INSERT, UPDATE ON agents TO sipdrain_agent_state;
GRANT SELECT ON drains, edges, registrations, sites TO sipdrain_agent_state;
GRANT SELECT, INSERT ON inbox TO sipdrain_agent_state;
GRANT SELECT, INSERT, UPDATE, DELETE ON outbox TO sipdrain_agent_state;

GRANT SELECT, UPDATE ON agents, edges, sites TO sipdrain_orchestrator;
GRANT SELECT, INSERT, UPDATE ON drains, drain_agents TO sipdrain_orchestrator;
GRANT SELECT, INSERT ON inbox TO sipdrain_orchestrator;
GRANT SELECT, INSERT, UPDATE, DELETE ON outbox TO sipdrain_orchestrator;

GRANT USAGE ON SEQUENCE outbox_id_seq TO sipdrain_edge, sipdrain_agent_state,
    sipdrain_orchestrator;

GRANT SELECT ON agents, drains, edges TO sipdrain_drainctl;

GRANT SELECT, INSERT, UPDATE, DELETE ON sip_credentials TO sipdrain_passwd;
