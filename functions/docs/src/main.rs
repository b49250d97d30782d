//! Lambda entry point: see `shared::handlers::docs`.

fn main() -> std::process::ExitCode {
    shared::runtime::start_without_storage(shared::handlers::docs::handle)
}
