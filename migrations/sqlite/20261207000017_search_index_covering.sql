-- Searches by token and reference find their resources' ids in the index itself: with the
-- system and the id in it, a match no longer reads the search_index row it points to (a
-- second B-tree descent per match).
CREATE INDEX search_index_by_value_covering ON search_index (resource_type, param, value, system, id);
DROP INDEX search_index_by_value;
