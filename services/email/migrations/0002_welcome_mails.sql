-- Every welcome mail, from the moment the event is accepted. The row is written as
-- 'pending' with the inbox entry, the mail is sent from the row, and the row is marked
-- 'sent' only after the SMTP server accepted it. A crash or an SMTP outage in between
-- leaves a pending row that the next delivery of the event sends.
create table welcome_mails (
    -- One welcome mail per user.registered event.
    event_id   uuid primary key,
    user_id    uuid not null,
    recipient  text not null,
    subject    text not null,
    body       text not null,
    -- RFC 5322 Message-ID, derived from the event id: if a crash ever makes us send the
    -- same mail twice, mail systems can recognise the duplicate.
    message_id text not null,
    status     text not null default 'pending' check (status in ('pending', 'sent')),
    created_at timestamptz not null default now(),
    sent_at    timestamptz
);

-- GET /emails?to=... looks mails up by recipient.
create index welcome_mails_recipient on welcome_mails (recipient);
