-- sipdrain core tables (DESIGN.md §3). PostgreSQL is the source of truth:
-- every change other services must learn about is written together with its
-- outgoing event (outbox) in one transaction; consumers record the event ids
-- they applied (inbox) in the transaction of their effect.
--
-- Applied once by the migrations runner (sipdrain-migrate / sd_pg_migrate),
-- recorded in schema_migrations with a checksum: never edit this file once it
-- has landed, add 0002_*.sql instead.

CREATE TABLE sites (
    site_id     text PRIMARY KEY,
    peer        text REFERENCES sites (site_id) DEFERRABLE INITIALLY DEFERRED,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE agents (
    agent_id       text PRIMARY KEY,
    dn             text NOT NULL,
    site           text NOT NULL REFERENCES sites (site_id),
    state          text NOT NULL DEFAULT 'logged_out'
                   CHECK (state IN ('logged_out', 'ready', 'not_ready', 'acw')),
    work_mode      text NOT NULL DEFAULT 'manual_in'
                   CHECK (work_mode IN ('manual_in', 'auto_in', 'acw')),
    acw_timeout_s  integer CHECK (acw_timeout_s IS NULL OR acw_timeout_s >= 0),
    acw_until      timestamptz,
    call_id        text,
    workspace      boolean NOT NULL DEFAULT false,
    nailed_up      boolean NOT NULL DEFAULT false,
    ready_since    timestamptz,
    drain          boolean NOT NULL DEFAULT false,
    version        bigint NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agents_site_ready ON agents (site, ready_since) WHERE state = 'ready';
CREATE INDEX agents_acw_until ON agents (acw_until) WHERE acw_until IS NOT NULL;
CREATE INDEX agents_dn ON agents (dn);

CREATE TABLE registrations (
    dn          text NOT NULL,
    contact     text NOT NULL,
    edge_id     text NOT NULL,
    expires_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dn, contact)
);
CREATE INDEX registrations_edge ON registrations (edge_id);

CREATE TABLE edges (
    edge_id         text PRIMARY KEY,
    site            text NOT NULL REFERENCES sites (site_id),
    state           text NOT NULL DEFAULT 'active',
    active_calls    integer NOT NULL DEFAULT 0,
    pending_byes    integer NOT NULL DEFAULT 0,
    last_heartbeat  timestamptz
);

CREATE TABLE calls (
    call_id      text PRIMARY KEY,
    edge_id      text NOT NULL,
    site         text NOT NULL,
    agent_id     text,
    direction    text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    state        text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    answered_at  timestamptz,
    ended_at     timestamptz,
    end_cause    text
);
CREATE INDEX calls_open_by_edge ON calls (edge_id) WHERE ended_at IS NULL;
CREATE INDEX calls_agent ON calls (agent_id) WHERE ended_at IS NULL;

CREATE TABLE drains (
    drain_id      uuid PRIMARY KEY,
    scope         text NOT NULL CHECK (scope IN ('site', 'edge')),
    target        text NOT NULL,           -- site id or edge id
    site          text NOT NULL,
    phase         text NOT NULL,
    options       jsonb NOT NULL DEFAULT '{}'::jsonb,
    requested_by  text,
    started_at    timestamptz NOT NULL DEFAULT now(),
    deadline_at   timestamptz,
    ended_at      timestamptz,
    result        text
);
-- At most one drain in progress per target.
CREATE UNIQUE INDEX drains_one_open ON drains (scope, target) WHERE ended_at IS NULL;

-- Transactional outbox: rows are written in the producer's own transaction and
-- published by the relay (sd_outbox_relay) of the same owner (the writing
-- service instance), which deletes each row once Kafka has acknowledged it.
-- One relay per owner keeps each instance's events in order; rows left
-- pending for over a minute (an owner gone for good) are taken by any relay.
-- payload is bytea because dead-letter records keep the raw message, which
-- need not be valid UTF-8.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    owner       text NOT NULL,
    topic       text NOT NULL,
    key         text,
    payload     bytea NOT NULL,
    headers     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- set when Kafka refuses the row for good (e.g. too large): the row is
    -- kept for an operator, with the reason, and no longer blocks the relay
    failed_at   timestamptz,
    error       text
);
-- No index beyond the primary key: delivered rows are deleted, so the table
-- stays small and id order is the scan order; one index less per row written.

-- Inbox: one row per (consumer, event id) applied, inserted in the same
-- transaction as the effect; ON CONFLICT DO NOTHING detects a duplicate.
CREATE TABLE inbox (
    consumer     text NOT NULL,
    event_id     text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
