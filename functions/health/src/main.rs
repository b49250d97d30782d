//! Lambda entry point: see `shared::handlers::health`.

fn main() -> std::process::ExitCode {
    shared::runtime::start(shared::handlers::health::handle)
}
