//! The `email` binary. Everything is in the library, so tests build the same app.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    email::SERVICE.main(email::build).await
}
