-- A verification belongs to whoever verified (API.md "Security rules"). The earlier table was
-- keyed by the number alone, so anyone could register a number its owner had just verified.
-- Now each successful verify-otp is one row: the client address it came from and the hash of
-- the single-use verification_token it answered. Rows of the old table (live for at most 10
-- minutes) carry no owner and are dropped: those users verify again.
DROP TABLE verified_numbers;

CREATE TABLE verified_numbers (
    token_hash    TEXT    NOT NULL PRIMARY KEY,  -- hex SHA-256 of the token; the token is never stored
    mobile_number TEXT    NOT NULL,              -- E.164
    client_ip     TEXT    NOT NULL,              -- the address that verified
    verified_at   INTEGER NOT NULL,              -- unix
    expires_at    INTEGER NOT NULL               -- unix
) STRICT;

CREATE INDEX idx_verified_numbers_number_ip ON verified_numbers (mobile_number, client_ip);
