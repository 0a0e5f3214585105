-- Personal data sealed at rest (docs/decisions/0014): the recipient, the subject (it
-- names the user) and the body are stored sealed with the service's key (PII_KEYS); the
-- recipient's keyed hash (PII_LOOKUP_KEY) is what `GET /emails?to=` looks up.
--
-- The clear columns stay, nullable, for rows written before this migration: the service
-- seals those at start and empties them. A later migration drops them.
alter table welcome_mails
    add column recipient_hash bytea,
    add column recipient_sealed bytea,
    add column subject_sealed bytea,
    add column body_sealed bytea,
    alter column recipient drop not null,
    alter column subject drop not null,
    alter column body drop not null;

drop index welcome_mails_recipient;
create index welcome_mails_recipient_hash on welcome_mails (recipient_hash);
