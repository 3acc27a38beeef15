-- A client-made transaction id that was deleted stays taken while its tombstone is kept
-- (API.md "Sync for offline clients": 409 id_conflict). POST /transactions with an `id` looks
-- the id up here: one index seek instead of a scan of the user's tombstones.
CREATE INDEX idx_sync_tombstones_row ON sync_tombstones (user_id, kind, row_id);
