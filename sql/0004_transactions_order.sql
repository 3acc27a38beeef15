-- The transaction list orders by (transaction_date DESC, created_at DESC, id); an index that
-- ends with all three lets SQLite read the page in order instead of sorting the month's rows.
CREATE INDEX idx_transactions_user_month_order
    ON transactions (user_id, year, month, transaction_date DESC, created_at DESC, id);

DROP INDEX idx_transactions_user_month_date;
