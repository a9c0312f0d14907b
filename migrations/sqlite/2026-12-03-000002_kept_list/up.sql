-- The full list's rendered chunks, each as of a change-log seq, kept so
-- that a process that starts (or another instance) brings them up to date
-- from the log instead of walking both tables. They are a cache of the
-- orders: rows that do not fit together, or that the log cannot bring up
-- to date, are walked again and rewritten.
-- body is the last column: SQLite reads a row's columns in order, and a
-- column after a 320 KB body would make every read of the index walk it.
CREATE TABLE list_chunks (
    -- the lowest id the chunk covers; '' for the oldest chunk, which
    -- covers everything below
    from_id TEXT NOT NULL PRIMARY KEY,
    -- the from_id of the chunk above, which it reaches up to; NULL for
    -- the newest chunk
    below_id TEXT,
    -- the change_head epoch and seq the body is the range's orders at
    epoch BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    order_count BIGINT NOT NULL,
    -- xxh3 of body, so a writer rewrites only what changed
    digest BIGINT NOT NULL,
    -- epoch milliseconds of the last write of seq
    kept_at BIGINT NOT NULL,
    -- the orders' JSON joined by commas
    body BLOB NOT NULL
);
