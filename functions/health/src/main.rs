//! Lambda entry point: see `shared::handlers::health`.

fn main() -> std::process::ExitCode {
    shared::runtime::start_without_storage(shared::handlers::health::handle)
}
