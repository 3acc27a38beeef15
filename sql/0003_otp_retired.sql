-- Codes that were replaced by a new send, used, killed by too many wrong tries, or never
-- delivered. A client presenting one is told "expired" (not "invalid"), and it does not count
-- as a wrong guess. Rows older than a day are pruned by the send path.
CREATE TABLE otp_retired (
    mobile_number TEXT    NOT NULL,
    code_hash     TEXT    NOT NULL,
    retired_at    INTEGER NOT NULL,
    PRIMARY KEY (mobile_number, code_hash)
) STRICT, WITHOUT ROWID;

CREATE INDEX otp_retired_by_time ON otp_retired (retired_at);
