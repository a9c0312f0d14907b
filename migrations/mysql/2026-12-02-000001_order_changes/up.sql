-- Every committed change of the orders, in commit order, written in the
-- same transaction as the change. A full-list build reads what changed
-- since the list it holds and re-reads only those orders' neighbourhoods;
-- later, order events can be published from it. order_id NULL means every
-- order may have changed (a reset, a seed).
CREATE TABLE order_changes (
    seq BIGINT NOT NULL,
    order_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL,
    kind VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    -- the order's version after the change; NULL for a delete, reset or seed
    version BIGINT NULL,
    -- epoch milliseconds
    changed_at BIGINT NOT NULL,
    PRIMARY KEY (seq),
    -- Lets old changes be pruned without a scan.
    KEY order_changes_changed_at (changed_at)
) ENGINE = InnoDB;

-- The last seq, one row. A writer bumps it as its transaction's last
-- statement and writes its change under the new value: the row lock, held
-- to the commit, makes seq order the commit order, so a reader that sees a
-- change sees every change before it (InnoDB would hand out AUTO_INCREMENT
-- values in insert order, not commit order). epoch is random, so a list
-- held by a process is never matched against a rebuilt table's seqs.
CREATE TABLE change_head (
    id TINYINT NOT NULL,
    epoch BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB;

INSERT INTO change_head (id, epoch, seq)
VALUES (1, FLOOR(RAND() * 9007199254740991), 0);
