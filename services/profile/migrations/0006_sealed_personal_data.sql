-- Personal data sealed at rest (docs/decisions/0014): the display name is stored sealed
-- with the service's key (PII_KEYS); profiles are only ever read by user id, so there is
-- no keyed hash.
--
-- The clear column stays, nullable, for rows written before this migration: the service
-- seals those at start and empties it. A later migration drops it.
alter table profiles add column display_name_sealed bytea;
