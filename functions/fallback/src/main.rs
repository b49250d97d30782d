//! Lambda entry point: see `shared::handlers::fallback`.

fn main() -> std::process::ExitCode {
    shared::runtime::start_public(shared::handlers::fallback::handle)
}
