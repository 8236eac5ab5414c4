-- 0004: agent phones authenticate (issue #14).
--
-- A phone's REGISTER is answered 401 with a digest challenge and accepted
-- only with a response made from the DN's password. The password itself is
-- never stored: only HA1 = H(dn ":" realm ":" password), one row per realm
-- and algorithm (RFC 8760: SHA-256 and MD5 are both offered; a phone
-- answers with the one it knows). An HA1 is as good as the password for
-- that realm: whoever reads this table can register as the phone. Written
-- by `sipdrain-passwd`; read by sip-edge.
CREATE TABLE sip_credentials (
    dn          text NOT NULL,
    realm       text NOT NULL,
    algorithm   text NOT NULL CHECK (algorithm IN ('MD5', 'SHA-256')),
    ha1         text NOT NULL CHECK (ha1 ~ '^[0-9a-f]{32}([0-9a-f]{32})?$'),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dn, realm, algorithm)
);

-- Expired registrations are deleted (sip-edge, every minute); this finds them.
CREATE INDEX registrations_expires ON registrations (expires_at);
