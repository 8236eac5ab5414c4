-- deploy/sql/1001_sites.sql - the deployment's own rows (docker-compose's
-- migrate step applies this folder after schemas/sql, each file once): the
-- two sites of docker-compose.yml, each the other's peer.
INSERT INTO sites (site_id, peer) VALUES ('site1', 'site2'), ('site2', 'site1')
    ON CONFLICT (site_id) DO NOTHING;
