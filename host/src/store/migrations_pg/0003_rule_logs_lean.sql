-- The rule log without its indexes, as SQLite's migration 0008 says why: each row is
-- inserted and, with the table held to 10,000 rows, deleted once, and keeping a UNIQUE
-- index on the random `id` and three more on time, rule and client cost more than the row.
-- A listing walks the primary key (`seq`) backwards; the relay to other nodes reads it
-- forwards; counts and the age prune read the retained rows once.
ALTER TABLE rule_logs DROP CONSTRAINT rule_logs_id_key;
DROP INDEX rule_logs_time;
DROP INDEX rule_logs_rule;
DROP INDEX rule_logs_client;
