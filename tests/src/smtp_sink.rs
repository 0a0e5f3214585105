//! An in-process SMTP server that records every message it accepts.
//!
//! The email service talks to a real SMTP server through lettre. A mock of the
//! lettre transport would prove only that we call our own code; a real server on
//! loopback proves that the bytes on the wire are a valid SMTP conversation, that
//! the envelope holds the right addresses and that the message carries the right
//! headers. The sink speaks just enough of [RFC 5321] for lettre's
//! `AsyncSmtpTransport::builder_dangerous(host).port(port)` (plain text, no TLS,
//! no AUTH): greeting, `EHLO`/`HELO`, `MAIL FROM`, `RCPT TO`, `DATA`, `RSET`,
//! `NOOP` and `QUIT`.
//!
//! # Layout
//!
//! As in mini-redis, the protocol is kept apart from the transport:
//! `Session` is a pure state machine from one command line to one `Step`, with
//! no I/O, and `serve_connection` owns the socket and does what the step says.
//!
//! # Fault injection
//!
//! [`SmtpSink::set_accepting`] with `false` makes the sink answer
//! `421 service not available` and close, which every SMTP client treats as a
//! transient failure: the email service should retry, not drop the message.
//!
//! [`SmtpSink::fail_recipient`] and [`SmtpSink::reject_recipient`] make one
//! address fail at `RCPT TO` (with `451`, transient, or `550`, permanent) a
//! given number of times, so that a test can make exactly one event fail while
//! the others flow. Every `RCPT TO` is recorded per address with the time it
//! arrived ([`SmtpSink::rcpt_attempts`]), so a test can count the attempts the
//! service made for one event and check how far apart they were.
//!
//! [RFC 5321]: https://www.rfc-editor.org/rfc/rfc5321

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The first thing a client reads after connecting (RFC 5321 §4.3.1).
const GREETING: &str = "220 smtp-sink ESMTP ready";

/// Answer to `EHLO`: a multi-line `250` reply, one extension per line.
///
/// `8BITMIME` and `SMTPUTF8` are advertised because lettre refuses to send a
/// non-ASCII message or address to a server that lacks them; the sink stores
/// bytes as they come, so it supports both for free. `STARTTLS` and `AUTH` are
/// deliberately absent: the sink is plain text only.
const EHLO_REPLY: &str = "250-smtp-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 HELP";

/// Answer to `HELO`, the pre-ESMTP greeting, which has no extension list.
const HELO_REPLY: &str = "250 smtp-sink";

/// Positive answer to `MAIL`, `RCPT`, `RSET` and `NOOP`.
const OK: &str = "250 2.0.0 OK";

/// Answer to `DATA` once the envelope is complete.
const START_DATA: &str = "354 end data with <CR><LF>.<CR><LF>";

/// Answer to the end of `DATA`: the message is stored.
const QUEUED: &str = "250 2.0.0 OK: message queued";

/// Answer to `QUIT`, after which the server closes.
const BYE: &str = "221 2.0.0 bye";

/// Answer while the sink is switched off. `421` is the code RFC 5321 §3.8
/// reserves for "service not available, closing transmission channel"; clients
/// classify it as transient (4xx) and may retry later.
const NOT_AVAILABLE: &str = "421 4.3.2 service not available";

/// Answer to `RCPT` for an address with a transient fault
/// ([`SmtpSink::fail_recipient`]): a `4xx`, which lettre reports as transient, so
/// the email service must retry the event.
const TRY_AGAIN: &str = "451 4.3.0 try again later";

/// Answer to `RCPT` for an address with a permanent fault
/// ([`SmtpSink::reject_recipient`]): a `5xx`, which the email service must not
/// retry.
const NO_SUCH_USER: &str = "550 5.1.1 no such mailbox";

/// Answer to a verb the sink does not implement (e.g. `VRFY`, `STARTTLS`, `AUTH`).
const NOT_IMPLEMENTED: &str = "502 5.5.2 command not implemented";

/// Answer to an argument the sink cannot parse, such as `MAIL` without `FROM:`.
const SYNTAX_ERROR: &str = "501 5.5.4 syntax error in parameters";

/// Answer to `MAIL` before `EHLO`/`HELO`.
const NEED_HELLO: &str = "503 5.5.1 send EHLO or HELO first";

/// Answer to a second `MAIL` inside a transaction.
const NESTED_MAIL: &str = "503 5.5.1 nested MAIL command";

/// Answer to `RCPT` before `MAIL`.
const NEED_MAIL: &str = "503 5.5.1 need MAIL first";

/// Answer to `DATA` before any accepted `RCPT`.
const NEED_RCPT: &str = "503 5.5.1 need RCPT first";

/// How long the accept loop pauses after a failed `accept`, so that a
/// persistent error (e.g. out of file descriptors) does not spin a core.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// One message the sink accepted: the envelope plus the raw message text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The reverse path from `MAIL FROM:<..>`, without the angle brackets
    /// (empty for the null sender `<>`).
    pub mail_from: String,
    /// Every forward path from `RCPT TO:<..>`, in the order received.
    pub rcpt_to: Vec<String>,
    /// The message (headers, blank line, body) exactly as sent, with CRLF line
    /// endings and dot-stuffing undone. The body is still transfer-encoded:
    /// lettre sends plain ASCII text as-is but may use quoted-printable or
    /// base64 for long lines or non-ASCII text.
    pub data: String,
}

impl ReceivedMail {
    /// The first envelope recipient (a welcome mail has exactly one); empty if
    /// there is none.
    pub fn recipient(&self) -> &str {
        self.rcpt_to.first().map_or("", String::as_str)
    }

    /// The value of the first header called `name` (compared without regard to
    /// case), with folded continuation lines joined, and surrounding whitespace
    /// trimmed. `None` if the message has no such header.
    ///
    /// Encoded words (`=?utf-8?b?...?=`) are returned as they are, not decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers()
            .into_iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    /// The part of [`data`](Self::data) after the blank line that ends the
    /// headers; empty if there is no such line.
    pub fn body(&self) -> &str {
        self.data
            .split_once("\r\n\r\n")
            .or_else(|| self.data.split_once("\n\n"))
            .map_or("", |(_, body)| body)
    }

    /// Whether the (still transfer-encoded) [`body`](Self::body) contains
    /// `needle`.
    pub fn body_contains(&self, needle: &str) -> bool {
        self.body().contains(needle)
    }

    /// All header fields as `(name, value)` pairs, unfolded.
    ///
    /// Unfolding follows RFC 5322 §2.2.3: a line that starts with a space or a
    /// tab continues the previous field, and only the line break is removed.
    fn headers(&self) -> Vec<(String, String)> {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in self.data.lines().take_while(|line| !line.is_empty()) {
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = fields.last_mut() {
                    value.push_str(line);
                }
            } else if let Some((name, value)) = line.split_once(':') {
                fields.push((name.trim().to_owned(), value.to_owned()));
            }
        }
        fields
            .into_iter()
            .map(|(name, value)| (name, value.trim().to_owned()))
            .collect()
    }
}

/// A running SMTP sink on `127.0.0.1` and a random free port.
///
/// Dropping it stops the accept loop and every open session, so each test can
/// own one without any cleanup code.
#[derive(Debug)]
pub struct SmtpSink {
    /// Where the sink listens.
    addr: SocketAddr,
    /// State shared with the accept loop and the sessions.
    state: Arc<State>,
    /// Cancelled on drop; the accept loop and every session stop on it.
    shutdown: CancellationToken,
}

/// What the sink's tasks share with the [`SmtpSink`] handle.
#[derive(Debug)]
struct State {
    /// Every accepted message, in arrival order.
    ///
    /// A `watch` channel rather than a `Mutex<Vec<_>>` plus `Notify`: it is both
    /// the storage and the wake-up, so [`SmtpSink::wait_for`] can never miss a
    /// message that arrives between its check and its wait.
    mailbox: watch::Sender<Vec<ReceivedMail>>,
    /// Messages accepted, stored or not.
    received: AtomicUsize,
    /// Whether accepted messages are stored; the `smtp-sink` tool's `--quiet` mode only
    /// counts them, so that a benchmark neither fills its memory nor copies them.
    keep: bool,
    /// Whether sessions are served (`true`) or answered with `421` (`false`).
    /// An atomic is enough: it is a single flag read independently by each session.
    accepting: AtomicBool,
    /// Per-address faults and the record of every `RCPT TO`. A plain mutex: it is
    /// held for a map lookup and never across an `.await`.
    recipients: Mutex<Recipients>,
}

/// What the sink knows about individual recipients, keyed by the address in
/// lower case.
#[derive(Debug, Default)]
struct Recipients {
    /// The fault each address still has to suffer.
    faults: HashMap<String, Fault>,
    /// Every `RCPT TO` for each address, in arrival order.
    attempts: HashMap<String, Vec<RcptAttempt>>,
}

/// A fault configured for one address.
#[derive(Debug, Clone, Copy)]
struct Fault {
    /// The reply `RCPT TO` gets instead of `250`.
    reply: &'static str,
    /// How many more times to fail; `None` for ever.
    remaining: Option<usize>,
}

/// One `RCPT TO` the sink received for an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptAttempt {
    /// When the command arrived.
    pub at: Instant,
    /// The reply the sink gave (`250 …`, `451 …` or `550 …`).
    pub reply: String,
}

impl RcptAttempt {
    /// Whether the recipient was accepted on this attempt.
    pub fn accepted(&self) -> bool {
        self.reply.starts_with("250")
    }
}

impl State {
    /// The recipient table; a poisoned lock (a panicking test thread) still
    /// holds consistent data, since every update is a single insert.
    fn recipients(&self) -> MutexGuard<'_, Recipients> {
        self.recipients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records one `RCPT TO` for `path` and decides its reply: the configured
    /// fault while it lasts, else `250`.
    fn rcpt(&self, path: &str) -> &'static str {
        let key = path.to_ascii_lowercase();
        let mut recipients = self.recipients();
        let reply = match recipients.faults.get_mut(&key) {
            Some(fault) => match &mut fault.remaining {
                None => fault.reply,
                Some(remaining) if *remaining > 0 => {
                    *remaining -= 1;
                    fault.reply
                }
                Some(_) => OK,
            },
            None => OK,
        };
        recipients
            .attempts
            .entry(key)
            .or_default()
            .push(RcptAttempt {
                at: Instant::now(),
                reply: reply.to_owned(),
            });
        reply
    }

    /// Whether the sink currently serves SMTP sessions.
    fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }

    /// Stores a message and wakes every [`SmtpSink::wait_for`].
    fn store(&self, mail: ReceivedMail) {
        self.received.fetch_add(1, Ordering::Relaxed);
        if self.keep {
            self.mailbox.send_modify(|mailbox| mailbox.push(mail));
        }
    }
}

impl SmtpSink {
    /// Binds `127.0.0.1:0` and starts serving in a background task.
    ///
    /// Must be called inside a Tokio runtime. Binding a port chosen by the
    /// kernel lets many tests run in parallel without colliding.
    ///
    /// # Errors
    ///
    /// Returns the I/O error if the listener cannot be bound.
    pub async fn start() -> io::Result<Self> {
        Self::start_on(0).await
    }

    /// Like [`SmtpSink::start`], on a chosen port of 127.0.0.1 (0 picks a free one).
    pub async fn start_on(port: u16) -> io::Result<Self> {
        Self::start_with(port, true).await
    }

    /// Like [`SmtpSink::start_on`], counting the messages ([`SmtpSink::received`])
    /// without keeping them: for the `smtp-sink` tool under load.
    pub async fn start_counting_on(port: u16) -> io::Result<Self> {
        Self::start_with(port, false).await
    }

    async fn start_with(port: u16, keep: bool) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            mailbox: watch::Sender::new(Vec::new()),
            received: AtomicUsize::new(0),
            keep,
            accepting: AtomicBool::new(true),
            recipients: Mutex::new(Recipients::default()),
        });
        let shutdown = CancellationToken::new();
        tokio::spawn(accept_loop(listener, state.clone(), shutdown.clone()));
        Ok(Self {
            addr,
            state,
            shutdown,
        })
    }

    /// The socket address the sink listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port the sink listens on, for `builder_dangerous("127.0.0.1").port(..)`.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The sink as an SMTP URL, `smtp://127.0.0.1:PORT`, for lettre's
    /// `AsyncSmtpTransport::from_url` or a service's configuration.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// How many messages have been accepted, whether kept or only counted.
    pub fn received(&self) -> usize {
        self.state.received.load(Ordering::Relaxed)
    }

    /// A snapshot of every message accepted so far, in arrival order.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.state.mailbox.borrow().clone()
    }

    /// Waits until at least `count` messages have arrived and returns every message
    /// received by then; fails the test if `timeout` passes first, saying how many
    /// arrived, so that a test never goes on with fewer mails than it waited for.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<ReceivedMail> {
        if tokio::time::timeout(timeout, self.wait_until(count))
            .await
            .is_err()
        {
            let arrived = self.messages().len();
            crate::eventually::give_up(
                &format!("{count} mails at the SMTP sink"),
                timeout,
                Some(&format!("{arrived} mails")),
            );
        }
        self.messages()
    }

    /// Waits, for as long as it takes, until at least `count` messages have arrived,
    /// and returns every message received by then: for the `smtp-sink` tool, which
    /// waits for the next mail until it is stopped.
    pub async fn wait_until(&self, count: usize) -> Vec<ReceivedMail> {
        let mut mailbox = self.state.mailbox.subscribe();
        // The `Ref` inside is dropped at the end of this statement, before we borrow
        // again. `wait_for` can only fail if the sender is gone, which cannot happen
        // while `self` holds the `State`.
        let _ = mailbox.wait_for(|mail| mail.len() >= count).await;
        self.messages()
    }

    /// Switches the sink on (`true`, the default) or off (`false`).
    ///
    /// While off, a new connection gets `421` and is closed, and an open session
    /// gets `421` in answer to its next command (or to the end of `DATA`) and is
    /// closed, so no message is stored. The second rule matters because lettre
    /// pools connections: without it a service would keep delivering over a
    /// connection it opened before the switch.
    pub fn set_accepting(&self, accepting: bool) {
        self.state.accepting.store(accepting, Ordering::SeqCst);
    }

    /// Makes `RCPT TO:<address>` fail with `451 4.3.0` (transient) the next
    /// `times` times, or for ever with `None`; other addresses are unaffected.
    ///
    /// This is how a test makes one *given event* fail N times and then succeed:
    /// the email service treats a 4xx as a reason to retry the whole event.
    pub fn fail_recipient(&self, address: &str, times: Option<usize>) {
        self.set_fault(address, TRY_AGAIN, times);
    }

    /// Makes `RCPT TO:<address>` fail with `550 5.1.1` (permanent) the next
    /// `times` times, or for ever with `None`: an event the email service must
    /// dead-letter at once instead of retrying.
    pub fn reject_recipient(&self, address: &str, times: Option<usize>) {
        self.set_fault(address, NO_SUCH_USER, times);
    }

    /// Removes the fault of `address` (the "fix"); its recorded attempts stay.
    pub fn heal_recipient(&self, address: &str) {
        self.state
            .recipients()
            .faults
            .remove(&address.to_ascii_lowercase());
    }

    /// Every `RCPT TO` received for `address` (compared without regard to case),
    /// in arrival order, each with its time and the reply it got.
    pub fn rcpt_attempts(&self, address: &str) -> Vec<RcptAttempt> {
        self.state
            .recipients()
            .attempts
            .get(&address.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    }

    /// The stored messages whose first recipient is `address`.
    pub fn messages_to(&self, address: &str) -> Vec<ReceivedMail> {
        self.state
            .mailbox
            .borrow()
            .iter()
            .filter(|mail| mail.recipient().eq_ignore_ascii_case(address))
            .cloned()
            .collect()
    }

    fn set_fault(&self, address: &str, reply: &'static str, times: Option<usize>) {
        self.state.recipients().faults.insert(
            address.to_ascii_lowercase(),
            Fault {
                reply,
                remaining: times,
            },
        );
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Accepts connections until `shutdown`, serving each in its own task so that
/// one slow or stuck client cannot hold up another.
async fn accept_loop(listener: TcpListener, state: Arc<State>, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _peer)) = accepted else {
            tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            continue;
        };
        let state = state.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            // A session ends with an I/O error whenever a client hangs up
            // without `QUIT`, which is normal for a test server and needs no report.
            let _ = shutdown
                .run_until_cancelled(serve_connection(stream, &state))
                .await;
        });
    }
}

/// Runs one SMTP session over `stream` until `QUIT`, end of stream, or `421`.
async fn serve_connection(stream: TcpStream, state: &State) -> io::Result<()> {
    // Replies are whole lines written at once (see `reply`); sending each as soon as it
    // is written keeps a conversation from waiting on delayed acknowledgements.
    stream.set_nodelay(true)?;
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    if !state.is_accepting() {
        return reply(&mut writer, NOT_AVAILABLE).await;
    }
    reply(&mut writer, GREETING).await?;
    let mut session = Session::default();
    while let Some(line) = read_line(&mut reader).await? {
        if !state.is_accepting() {
            return reply(&mut writer, NOT_AVAILABLE).await;
        }
        match session.command(&line) {
            Step::Reply(text) => reply(&mut writer, text).await?,
            Step::Close(text) => return reply(&mut writer, text).await,
            Step::Recipient(path) => {
                let answer = state.rcpt(&path);
                if answer == OK {
                    session.add_recipient(path);
                }
                reply(&mut writer, answer).await?;
            }
            Step::ReadData => {
                reply(&mut writer, START_DATA).await?;
                let Some(data) = read_data(&mut reader).await? else {
                    return Ok(());
                };
                if !state.is_accepting() {
                    return reply(&mut writer, NOT_AVAILABLE).await;
                }
                // Store before answering, so that a client that has seen `250`
                // can rely on `messages()` already holding the message.
                state.store(session.finish(data));
                reply(&mut writer, QUEUED).await?;
            }
        }
    }
    Ok(())
}

/// Writes one reply followed by CRLF, in a single write.
///
/// One write, not the text and then the CRLF: with Nagle's algorithm the second small
/// segment would wait for the client to acknowledge the first, and a client that is
/// waiting for the rest of the reply delays its acknowledgement (40 ms on Linux). That
/// stall, once per reply, made every mail take some 160 ms longer than it should.
async fn reply(writer: &mut (impl AsyncWrite + Unpin), text: &str) -> io::Result<()> {
    let mut line = Vec::with_capacity(text.len() + 2);
    line.extend_from_slice(text.as_bytes());
    line.extend_from_slice(b"\r\n");
    writer.write_all(&line).await?;
    writer.flush().await
}

/// Reads one command line without its line ending; `None` at end of stream.
///
/// Bytes that are not UTF-8 are replaced rather than rejected: commands are
/// ASCII, and a test server should be lenient where leniency costs nothing.
async fn read_line(reader: &mut (impl AsyncBufRead + Unpin)) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line).await? == 0 {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&line);
    Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned()))
}

/// Reads the message after `354` up to the line holding a single dot, undoing
/// dot-stuffing (RFC 5321 §4.5.2: the client doubles a leading dot, so we
/// drop one). `None` if the stream ends before the terminator.
async fn read_data(reader: &mut (impl AsyncBufRead + Unpin)) -> io::Result<Option<String>> {
    let mut data = Vec::new();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(None);
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(Some(String::from_utf8_lossy(&data).into_owned()));
        }
        let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
        data.extend_from_slice(unstuffed);
    }
}

/// What the connection must do after a command.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Send this reply and read the next command.
    Reply(&'static str),
    /// A well-formed `RCPT TO` for this path: the sink decides (faults live in
    /// the shared state, not in the pure session), and the session adds the
    /// path only if it was accepted.
    Recipient(String),
    /// Send `354`, then read the message (the envelope is complete).
    ReadData,
    /// Send this reply and close the connection.
    Close(&'static str),
}

/// The state of one SMTP session: no I/O, so every rule is a plain function
/// of the command line and the state so far.
#[derive(Debug, Default)]
struct Session {
    /// Whether the client has sent `EHLO` or `HELO`.
    greeted: bool,
    /// The reverse path of the open transaction, if `MAIL` has been accepted.
    mail_from: Option<String>,
    /// The forward paths accepted so far in this transaction.
    rcpt_to: Vec<String>,
}

impl Session {
    /// Applies one command line (without CRLF) and says what to do next.
    fn command(&mut self, line: &str) -> Step {
        let (verb, argument) = line.split_once(' ').unwrap_or((line, ""));
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => self.hello(EHLO_REPLY),
            "HELO" => self.hello(HELO_REPLY),
            "MAIL" => self.mail(argument),
            "RCPT" => self.rcpt(argument),
            "DATA" => self.data(),
            "RSET" => {
                self.reset();
                Step::Reply(OK)
            }
            "NOOP" => Step::Reply(OK),
            "QUIT" => Step::Close(BYE),
            _ => Step::Reply(NOT_IMPLEMENTED),
        }
    }

    /// `EHLO`/`HELO`: starts the session afresh (RFC 5321 §4.1.4 says a
    /// greeting also resets any open transaction).
    fn hello(&mut self, answer: &'static str) -> Step {
        self.reset();
        self.greeted = true;
        Step::Reply(answer)
    }

    /// `MAIL FROM:<path> [parameters]`: opens a transaction. Parameters such
    /// as `BODY=8BITMIME` are accepted and ignored.
    fn mail(&mut self, argument: &str) -> Step {
        if !self.greeted {
            return Step::Reply(NEED_HELLO);
        }
        if self.mail_from.is_some() {
            return Step::Reply(NESTED_MAIL);
        }
        match path_after(argument, "FROM:") {
            Some(path) => {
                self.mail_from = Some(path);
                Step::Reply(OK)
            }
            None => Step::Reply(SYNTAX_ERROR),
        }
    }

    /// `RCPT TO:<path>`: adds one recipient; may repeat.
    fn rcpt(&mut self, argument: &str) -> Step {
        if self.mail_from.is_none() {
            return Step::Reply(NEED_MAIL);
        }
        match path_after(argument, "TO:") {
            Some(path) => Step::Recipient(path),
            None => Step::Reply(SYNTAX_ERROR),
        }
    }

    /// Adds a recipient the sink accepted to the open transaction.
    fn add_recipient(&mut self, path: String) {
        self.rcpt_to.push(path);
    }

    /// `DATA`: allowed once the envelope has a sender and a recipient.
    fn data(&self) -> Step {
        if self.rcpt_to.is_empty() {
            Step::Reply(NEED_RCPT)
        } else {
            Step::ReadData
        }
    }

    /// Closes the transaction with the message text and returns the mail.
    fn finish(&mut self, data: String) -> ReceivedMail {
        ReceivedMail {
            mail_from: self.mail_from.take().unwrap_or_default(),
            rcpt_to: std::mem::take(&mut self.rcpt_to),
            data,
        }
    }

    /// Forgets the open transaction but keeps the greeting.
    fn reset(&mut self) {
        self.mail_from = None;
        self.rcpt_to.clear();
    }
}

/// Extracts the path from `FROM:<a@b> ...` or `TO:<a@b>`: `keyword` is
/// matched without regard to case, a space after the colon is tolerated, and
/// the angle brackets are removed. `None` if `keyword` or the closing `>` is
/// missing.
fn path_after(argument: &str, keyword: &str) -> Option<String> {
    let argument = argument.trim_start();
    let head = argument.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = argument[keyword.len()..].trim_start();
    match rest.strip_prefix('<') {
        Some(bracketed) => bracketed.split_once('>').map(|(path, _)| path.to_owned()),
        None => rest.split_whitespace().next().map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

    /// Long enough for loopback on a busy CI machine, short enough to fail fast.
    const PATIENCE: Duration = Duration::from_secs(5);

    /// A raw SMTP client: writes command lines, reads whole (multi-line) replies.
    struct Client {
        reader: BufReader<OwnedReadHalf>,
        writer: OwnedWriteHalf,
    }

    impl Client {
        async fn connect(sink: &SmtpSink) -> anyhow::Result<Self> {
            let (reader, writer) = TcpStream::connect(sink.addr()).await?.into_split();
            Ok(Self {
                reader: BufReader::new(reader),
                writer,
            })
        }

        /// Reads one reply; a multi-line reply ends at the line whose fourth
        /// character is a space (`250 ...` after `250-...`). Empty at end of stream.
        async fn reply(&mut self) -> anyhow::Result<String> {
            let mut text = String::new();
            loop {
                let mut line = String::new();
                if self.reader.read_line(&mut line).await? == 0 {
                    return Ok(text);
                }
                text.push_str(&line);
                if line.as_bytes().get(3) != Some(&b'-') {
                    return Ok(text);
                }
            }
        }

        async fn send(&mut self, line: &str) -> anyhow::Result<String> {
            self.writer
                .write_all(format!("{line}\r\n").as_bytes())
                .await?;
            self.reply().await
        }
    }

    /// A full conversation stores the envelope and the message, with the
    /// client's dot-stuffing undone.
    #[tokio::test]
    async fn a_complete_conversation_stores_the_message() -> anyhow::Result<()> {
        let sink = SmtpSink::start().await?;
        let mut client = Client::connect(&sink).await?;

        assert!(client.reply().await?.starts_with("220 "));
        let ehlo = client.send("EHLO test.example").await?;
        assert!(ehlo.starts_with("250-"), "{ehlo}");
        assert!(ehlo.contains("8BITMIME"), "{ehlo}");
        assert!(ehlo.ends_with("250 HELP\r\n"), "{ehlo}");
        let message = "Subject: Welcome\r\n aboard\r\nFrom: noreply@example.com\r\n\r\n\
                       ..a line that began with a dot\r\nHello Ada\r\n.";
        let conversation = [
            ("MAIL FROM:<noreply@example.com> BODY=8BITMIME", "250 "),
            ("RCPT TO:<ada@example.com>", "250 "),
            ("rcpt to: <bob@example.com>", "250 "),
            ("DATA", "354 "),
            (message, "250 "),
            ("QUIT", "221 "),
        ];
        for (command, expected) in conversation {
            let answer = client.send(command).await?;
            assert!(answer.starts_with(expected), "{command} -> {answer}");
        }

        let mails = sink.wait_for(1, PATIENCE).await;
        assert_eq!(mails.len(), 1, "{mails:?}");
        let mail = &mails[0];
        assert_eq!(mail.mail_from, "noreply@example.com");
        assert_eq!(mail.rcpt_to, ["ada@example.com", "bob@example.com"]);
        assert_eq!(mail.header("subject").as_deref(), Some("Welcome aboard"));
        assert_eq!(mail.header("FROM").as_deref(), Some("noreply@example.com"));
        assert_eq!(
            mail.body(),
            ".a line that began with a dot\r\nHello Ada\r\n"
        );
        assert!(mail.body_contains("Hello Ada"));
        Ok(())
    }

    /// Commands out of order and unknown verbs get the RFC 5321 error codes,
    /// and `RSET` abandons the transaction without storing anything.
    #[tokio::test]
    async fn out_of_order_and_unknown_commands_are_refused() -> anyhow::Result<()> {
        let sink = SmtpSink::start().await?;
        let mut client = Client::connect(&sink).await?;
        client.reply().await?;

        let cases = [
            ("MAIL FROM:<a@example.com>", "503 "),
            ("HELO test.example", "250 "),
            ("RCPT TO:<b@example.com>", "503 "),
            ("DATA", "503 "),
            ("MAIL TO:<a@example.com>", "501 "),
            ("MAIL FROM:<a@example.com>", "250 "),
            ("MAIL FROM:<a@example.com>", "503 "),
            ("VRFY someone", "502 "),
            ("NOOP", "250 "),
            ("RSET", "250 "),
            ("DATA", "503 "),
        ];
        for (command, expected) in cases {
            let answer = client.send(command).await?;
            assert!(answer.starts_with(expected), "{command} -> {answer}");
        }
        assert!(sink.messages().is_empty());
        Ok(())
    }

    /// While switched off, the sink answers new and open sessions with `421`
    /// and closes them; switched back on, it serves again.
    #[tokio::test]
    async fn a_sink_that_is_not_accepting_answers_421_and_closes() -> anyhow::Result<()> {
        let sink = SmtpSink::start().await?;
        let mut open = Client::connect(&sink).await?;
        open.reply().await?;
        sink.set_accepting(false);

        let mut fresh = Client::connect(&sink).await?;
        assert!(fresh.reply().await?.starts_with("421 "));
        assert_eq!(fresh.reply().await?, "", "connection should be closed");
        assert!(open.send("EHLO test.example").await?.starts_with("421 "));
        assert_eq!(open.reply().await?, "", "connection should be closed");

        sink.set_accepting(true);
        let mut again = Client::connect(&sink).await?;
        assert!(again.reply().await?.starts_with("220 "));
        Ok(())
    }

    /// A recipient with a fault gets `451` (or `550`) at `RCPT TO` as many times
    /// as configured, then `250`; every attempt is recorded, and other addresses
    /// are not affected.
    #[tokio::test]
    async fn a_recipient_fault_lasts_the_configured_number_of_attempts() -> anyhow::Result<()> {
        let sink = SmtpSink::start().await?;
        sink.fail_recipient("Flaky@example.com", Some(2));
        sink.reject_recipient("gone@example.com", None);
        let mut client = Client::connect(&sink).await?;
        client.reply().await?;
        client.send("EHLO test.example").await?;
        client.send("MAIL FROM:<a@example.com>").await?;

        let cases = [
            ("RCPT TO:<flaky@example.com>", "451 "),
            ("RCPT TO:<other@example.com>", "250 "),
            ("RCPT TO:<flaky@example.com>", "451 "),
            ("RCPT TO:<flaky@example.com>", "250 "),
            ("RCPT TO:<gone@example.com>", "550 "),
            ("RCPT TO:<gone@example.com>", "550 "),
        ];
        for (command, expected) in cases {
            let answer = client.send(command).await?;
            assert!(answer.starts_with(expected), "{command} -> {answer}");
        }
        client.send("DATA").await?;
        client.send("Subject: hi\r\n\r\nbody\r\n.").await?;

        let mails = sink.wait_for(1, PATIENCE).await;
        assert_eq!(
            mails[0].rcpt_to,
            ["other@example.com", "flaky@example.com"],
            "only accepted recipients are in the envelope"
        );
        let flaky = sink.rcpt_attempts("FLAKY@example.com");
        assert_eq!(
            flaky.iter().map(RcptAttempt::accepted).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert!(flaky.windows(2).all(|pair| pair[0].at <= pair[1].at));
        assert_eq!(sink.rcpt_attempts("gone@example.com").len(), 2);

        sink.heal_recipient("gone@example.com");
        client.send("RSET").await?;
        client.send("MAIL FROM:<a@example.com>").await?;
        let answer = client.send("RCPT TO:<gone@example.com>").await?;
        assert!(answer.starts_with("250 "), "healed: {answer}");
        Ok(())
    }

    /// `wait_for` fails the test at the timeout, saying how many mails it got.
    #[tokio::test]
    #[should_panic(expected = "waiting for 1 mails at the SMTP sink; last seen: 0 mails")]
    async fn wait_for_fails_the_test_at_the_timeout() {
        let sink = SmtpSink::start().await.expect("the sink starts");
        assert_eq!(sink.url(), format!("smtp://127.0.0.1:{}", sink.port()));
        sink.wait_for(1, Duration::from_millis(50)).await;
    }

    /// Dropping the sink closes its port.
    #[tokio::test]
    async fn dropping_the_sink_stops_listening() -> anyhow::Result<()> {
        let sink = SmtpSink::start().await?;
        let addr = sink.addr();
        drop(sink);
        // The accept task notices the cancellation at its next poll.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect(addr).await.is_err());
        Ok(())
    }

    /// Header lookup ignores case, unfolds continuation lines, and stops at the
    /// blank line (a "header" in the body is not a header).
    #[test]
    fn headers_are_unfolded_and_matched_without_case() {
        let mail = ReceivedMail {
            mail_from: String::new(),
            rcpt_to: Vec::new(),
            data: "To: a@example.com\r\nSubject: one\r\n\ttwo\r\n three\r\n\r\nX-Body: no\r\n"
                .to_owned(),
        };
        assert_eq!(mail.header("to").as_deref(), Some("a@example.com"));
        assert_eq!(mail.header("Subject").as_deref(), Some("one\ttwo three"));
        assert_eq!(mail.header("X-Body"), None);
        assert!(mail.body_contains("X-Body: no"));
    }

    /// Paths are read with or without brackets, spaces and case variations.
    #[test]
    fn paths_are_extracted_from_mail_and_rcpt_arguments() {
        let cases = [
            (
                "FROM:<a@example.com> BODY=8BITMIME",
                "FROM:",
                Some("a@example.com"),
            ),
            ("from: <a@example.com>", "FROM:", Some("a@example.com")),
            ("FROM:<>", "FROM:", Some("")),
            ("TO:b@example.com", "TO:", Some("b@example.com")),
            ("TO:<b@example.com", "TO:", None),
            ("FROM:<a@example.com>", "TO:", None),
            ("", "TO:", None),
        ];
        for (argument, keyword, expected) in cases {
            assert_eq!(
                path_after(argument, keyword).as_deref(),
                expected,
                "{argument:?} after {keyword}"
            );
        }
    }
}
