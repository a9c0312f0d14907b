-- Every committed change of the orders, in commit order, written in the
-- same transaction as the change. A full-list build reads what changed
-- since the list it holds and re-reads only those orders' neighbourhoods;
-- later, order events can be published from it. order_id NULL means every
-- order may have changed (a reset, a seed).
CREATE TABLE order_changes (
    seq BIGINT NOT NULL PRIMARY KEY,
    order_id CHAR(36),
    kind VARCHAR(16) NOT NULL,
    -- the order's version after the change; NULL for a delete, reset or seed
    version BIGINT,
    -- epoch milliseconds
    changed_at BIGINT NOT NULL
) WITHOUT ROWID;

-- Lets old changes be pruned without a scan.
CREATE INDEX order_changes_changed_at ON order_changes (changed_at);

-- The last seq, one row, bumped by each writing transaction (SQLite runs
-- one at a time). epoch is random, so a list held by a process is never
-- matched against a rebuilt table's seqs.
CREATE TABLE change_head (
    id INTEGER NOT NULL PRIMARY KEY,
    epoch BIGINT NOT NULL,
    seq BIGINT NOT NULL
);

INSERT INTO change_head (id, epoch, seq) VALUES (1, abs(random() >> 11), 0);
