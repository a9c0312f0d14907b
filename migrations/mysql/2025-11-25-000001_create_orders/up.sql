-- Ids are UUIDv7 text, so the primary key order is creation order: "newest
-- first" and keyset pages walk the clustered primary key backwards. ascii_bin
-- keeps the key 36 bytes and compares it bytewise, like the application.
CREATE TABLE orders (
    id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    customer_name VARCHAR(80) NOT NULL,
    status VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    -- epoch milliseconds, the precision of domain::Timestamp
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (id),
    -- Serves the status filter, newest first, without a sort.
    KEY orders_status_id (status, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Clustered by (order, position) so an order's items are stored together and
-- come back in the order they were given.
CREATE TABLE order_items (
    order_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    position INT NOT NULL,
    name VARCHAR(80) NOT NULL,
    quantity INT NOT NULL,
    PRIMARY KEY (order_id, position),
    CONSTRAINT order_items_order_id_fk FOREIGN KEY (order_id)
        REFERENCES orders (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Order counts per status, kept in the write transactions so that
-- total_orders never costs a scan. Each status has 16 shards, one picked at
-- random per write, which spreads row-lock contention between concurrent
-- writers; a total is the sum of the shards. Every row exists from the start
-- so that writers only ever UPDATE them (no gap locks from inserts).
CREATE TABLE order_counts (
    status VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    shard SMALLINT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (status, shard)
) ENGINE = InnoDB;

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
-- its bits as i64) and the exact 201 body to replay. VARBINARY compares keys
-- byte for byte (a _bin collation would pad trailing spaces).
CREATE TABLE idempotency_keys (
    idem_key VARBINARY(255) NOT NULL,
    fingerprint BIGINT NOT NULL,
    order_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    response LONGBLOB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (idem_key),
    -- Lets expired keys be purged without a scan.
    KEY idempotency_keys_created_at (created_at)
) ENGINE = InnoDB;
