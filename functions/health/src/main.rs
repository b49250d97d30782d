//! Lambda entry point: see `shared::handlers::health`.

fn main() -> std::process::ExitCode {
    shared::runtime::start_public(shared::handlers::health::handle)
}
