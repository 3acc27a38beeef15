-- Access tokens logged out before they expired, by `jti`, so a logout survives a restart
-- (API.md "Logout is durable"). The in-process cache answers first; this table answers for
-- whatever the cache does not hold (after a restart, or after it evicted). A row is useless
-- once its token has expired and is purged then.
CREATE TABLE revoked_access_tokens (
    jti        TEXT    NOT NULL PRIMARY KEY,
    expires_at INTEGER NOT NULL              -- unix; the token's own `exp`
) STRICT, WITHOUT ROWID;

CREATE INDEX idx_revoked_access_tokens_expires ON revoked_access_tokens (expires_at);
