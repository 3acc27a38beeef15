-- Placeholder: migration 0009 belongs to the chat (tool calling) branch. It only keeps the
-- numbering gap-free on the sync branch; DELETE THIS FILE when merging that branch's 0009.
SELECT 1;
