//! The `profile` binary. Everything is in the library, so tests build the same app.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    profile::SERVICE.main(profile::build).await
}
