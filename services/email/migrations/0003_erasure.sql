-- What this service knows of each user it has heard of: the `sequence` of the newest
-- event of theirs it applied, and whether they were erased (`user.deleted.v1`,
-- docs/decisions/0012). No personal data: after an erasure this row and the inbox are
-- all that is left of the user here.
--
-- Every event handler upserts the user's row first ("newest sequence wins"), so the
-- row also orders them: a `user.registered.v1` arriving after the user's deletion finds
-- a higher sequence and sends nothing, and a deletion that arrives while the welcome mail
-- is being sent waits for the row's lock, then erases the mail's record.
create table known_users (
    user_id       uuid primary key,
    last_sequence bigint not null,
    erased_at     timestamptz
);

-- The users mailed before this table existed: their sign-up (sequence 1) was applied.
-- Without their rows, a replay of an old sign-up whose inbox row has expired would try to
-- record its mail a second time.
insert into known_users (user_id, last_sequence)
select distinct user_id, 1 from welcome_mails;
