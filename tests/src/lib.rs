//! stub
pub mod otlp_sink;
pub mod smtp_sink;
pub mod tcp_proxy;
