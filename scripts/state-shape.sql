-- What a SQLite file lacks to be a vos-fastpath state database (state.sql's
-- shape), as one line: findings separated by '; ', empty when it is one or
-- when it has no tables yet (a new file, which state.sql sets up). Run at
-- every open by vosctl (lib/state.ts) and the scripts (lib.sh): it reads the
-- schema only.
WITH tables(name) AS (SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'),
need_tables(name) AS (VALUES ('entries'), ('sources'), ('consumer_offsets')),
need_cols(name) AS (VALUES ('target'), ('source'), ('reason'), ('added'), ('expires'), ('family'), ('prefixlen')),
has_entries(yes) AS (SELECT EXISTS (SELECT 1 FROM tables WHERE name = 'entries')),
found(what) AS (
  SELECT 'table ' || name FROM need_tables WHERE name NOT IN (SELECT name FROM tables)
  UNION ALL
  SELECT 'column entries.' || name FROM need_cols, has_entries WHERE yes AND name NOT IN (SELECT name FROM pragma_table_xinfo('entries'))
  UNION ALL
  SELECT 'a unique index on entries (target)' FROM has_entries WHERE yes AND NOT EXISTS (
    SELECT 1 FROM pragma_index_list('entries') AS il, pragma_index_info(il.name) AS ii WHERE il."unique" GROUP BY il.name HAVING count(*) = 1 AND max(ii.name) = 'target')
  UNION ALL
  SELECT 'a vos-fastpath header (application_id and user_version are both 0)'
  WHERE (SELECT application_id FROM pragma_application_id) = 0 AND (SELECT user_version FROM pragma_user_version) = 0
)
SELECT CASE WHEN (SELECT count(*) FROM tables) = 0 THEN '' ELSE ifnull((SELECT group_concat(what, '; ') FROM found), '') END;
