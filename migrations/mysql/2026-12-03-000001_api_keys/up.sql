-- API keys (README, "API keys"). Only the SHA-256 of the whole key is kept;
-- prefix is its visible part, unique (ascii_bin: keys are case-sensitive),
-- and how a request's key is found. scopes are names separated by spaces
-- ("orders:read admin"). Revoking sets revoked_at; the row stays, so lists
-- show who had which key.
CREATE TABLE api_keys (
    prefix CHAR(8) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    hash BINARY(32) NOT NULL,
    scopes VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    name VARCHAR(80) NULL,
    -- epoch milliseconds
    created_at BIGINT NOT NULL,
    revoked_at BIGINT NULL,
    PRIMARY KEY (prefix)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
