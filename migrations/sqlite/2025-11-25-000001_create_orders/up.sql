-- Ids are UUIDv7 text, so the primary key order is creation order: "newest
-- first" and keyset pages walk the primary key backwards. WITHOUT ROWID makes
-- that key the table's own b-tree instead of a second index beside a rowid.
CREATE TABLE orders (
    id CHAR(36) NOT NULL PRIMARY KEY,
    customer_name VARCHAR(80) NOT NULL,
    status VARCHAR(16) NOT NULL,
    -- epoch milliseconds, the precision of domain::Timestamp
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    version BIGINT NOT NULL
) WITHOUT ROWID;

-- Serves the status filter, newest first, without a sort.
CREATE INDEX orders_status_id ON orders (status, id);

-- Keyed by (order, position) so an order's items are stored together and
-- come back in the order they were given.
CREATE TABLE order_items (
    order_id CHAR(36) NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    name VARCHAR(80) NOT NULL,
    quantity INTEGER NOT NULL,
    PRIMARY KEY (order_id, position)
) WITHOUT ROWID;

-- Order counts per status, kept in the write transactions so that
-- total_orders never costs a scan. Each status has 16 shards, one picked at
-- random per write (on MySQL that spreads row-lock contention); a total is
-- the sum of the shards. Every row exists from the start so that writers
-- only ever UPDATE them.
CREATE TABLE order_counts (
    status VARCHAR(16) NOT NULL,
    shard SMALLINT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (status, shard)
) WITHOUT ROWID;

INSERT INTO order_counts (status, shard, n)
SELECT statuses.status, shards.shard, 0
FROM (
    SELECT 'received' AS status UNION ALL SELECT 'processing' UNION ALL
    SELECT 'preparing' UNION ALL SELECT 'ready' UNION ALL
    SELECT 'shipped' UNION ALL SELECT 'delivered' UNION ALL
    SELECT 'completed' UNION ALL SELECT 'cancelled'
) AS statuses
CROSS JOIN (
    SELECT 0 AS shard UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL
    SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL
    SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9 UNION ALL SELECT 10 UNION ALL
    SELECT 11 UNION ALL SELECT 12 UNION ALL SELECT 13 UNION ALL SELECT 14 UNION ALL
    SELECT 15
) AS shards;

-- Idempotency-Key records: the fingerprint of the request (a u64 stored with
-- its bits as i64) and the exact 201 body to replay.
CREATE TABLE idempotency_keys (
    idem_key VARCHAR(255) NOT NULL PRIMARY KEY,
    fingerprint BIGINT NOT NULL,
    order_id CHAR(36) NOT NULL,
    response BLOB NOT NULL,
    created_at BIGINT NOT NULL
);

-- Lets expired keys be purged without a scan.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
