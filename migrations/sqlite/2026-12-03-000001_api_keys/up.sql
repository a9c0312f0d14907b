-- API keys (README, "API keys"). Only the SHA-256 of the whole key is kept;
-- prefix is its visible part, unique, and how a request's key is found.
-- scopes are names separated by spaces ("orders:read admin"). Revoking
-- sets revoked_at; the row stays, so lists show who had which key.
CREATE TABLE api_keys (
    prefix CHAR(8) NOT NULL PRIMARY KEY,
    hash BLOB NOT NULL,
    scopes VARCHAR(64) NOT NULL,
    name VARCHAR(80),
    -- epoch milliseconds
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
) WITHOUT ROWID;
