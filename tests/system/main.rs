//! System tests: the real binaries, the local RabbitMQ and PostgreSQL, an SMTP server and
//! an OTLP receiver started by the test. One binary, one module per behaviour.

mod bad_input;
mod dead_letter;
mod one_trace;
mod operations;
mod outbox;
mod redelivery;
mod sign_up_flow;
