//! Lambda entry point: see `shared::handlers::fallback`.

fn main() -> std::process::ExitCode {
    shared::runtime::start_without_storage(shared::handlers::fallback::handle)
}
