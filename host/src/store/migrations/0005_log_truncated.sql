-- Whether some of an execution's rule output was cut to its bounds (the console cap, which
-- now counts every line as stored, and a failure's allowances). Entries stored before
-- this column existed read as not cut; the server holds them to the bounds as it lists them.
ALTER TABLE rule_logs ADD COLUMN truncated INTEGER NOT NULL DEFAULT 0;
